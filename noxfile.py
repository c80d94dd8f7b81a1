"""Automation: `nox -s tests`, `nox -s perf` (the 24-episode slice), `nox -s lint`,
`nox -s bench` (throughput and overhead benchmark)."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def perf(session: nox.Session) -> None:
    """The everyday slice from the seed guide, into deliverables/perf/."""
    session.install("-e", ".")
    session.run("python", "-m", "tracecore_perf", "--episodes", "24", "--workers", "4", "--strict-spec", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "tracecore_perf", "tests", "scripts", "noxfile.py")
