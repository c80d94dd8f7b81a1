"""Automation: `nox -s tests`, `nox -s perf` (the 24-episode slice), `nox -s lint`,
`nox -s bench` (throughput and overhead benchmark)."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test,ray]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def perf(session: nox.Session) -> None:
    """The everyday slice from TraceCore's performance guide, into deliverables/perf/."""
    session.install("-e", ".")
    session.run("python", "-m", "tracecore_perf", "--episodes", "24", "--workers", "4", "--strict-spec", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "tracecore_perf", "tests", "scripts", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput and overhead benchmark: run_batch, spawn, forkserver, in-process, and the
    fork floor (TraceCore alone, one plain fork per episode), interleaved over --rounds.
    `nox -s bench -- --episodes 300` for a quicker run; output in deliverables/perf/bench/."""
    session.install("-e", ".")
    session.run("python", "scripts/bench.py", *session.posargs)


@nox.session(name="memory-bench")
def memory_bench(session: nox.Session) -> None:
    """The harness's own peak RSS at 5,000 episodes against 500."""
    session.install("-e", ".")
    session.run("python", "scripts/memory_bench.py", *session.posargs)
