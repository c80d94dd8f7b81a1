"""The worker process: runs under the episode interpreter, one per worker slot.

This file is loaded by path by ``episode_process.py`` (``python episode_process.py zygote
...``, the fork loop) and depends only on the standard library and ``agent_bench``, so
``--python`` can point at any interpreter that has TraceCore installed and nothing of ours.

One zygote process per run (``episode_process.py zygote ...``) warms TraceCore once and
forks one worker per worker slot. The harness talks to the zygote and to each worker over
Unix sockets in JSON lines: the messages are ``tracecore_perf/protocol.py``'s Structs, built
and read here as plain dicts (``tests/test_protocol.py`` holds the two sides together), and
both roles greet with ``PROTOCOL_VERSION``. For every episode the worker forks one child
process that runs exactly one episode and exits:

- ``forkserver``: the zygote imported and warmed TraceCore; the child runs ``run()`` directly.
- ``spawn``: the child execs a fresh interpreter (``episode_process.py episode ...``).

The worker owns the mechanism around each child: its own process group, death with its
parent (PR_SET_PDEATHSIG), capped capture of its output, the result pipe, killing the
whole tree on request, and the kernel's accounting of it (``wait4``). It is a child
subreaper, so processes an episode leaves behind are re-parented here and killed when the
episode ends. The harness owns the policy (when to kill).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import re
import resource
import select
import shutil
import signal
import stat
import sys
import tempfile
import time

TYPE_CHECKING = False  # typing itself is an import the zygote need not pay for
if TYPE_CHECKING:
    from typing import NoReturn

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# What an episode reports is its result (a few hundred bytes) and TraceCore's artifact (tens
# of KB; LLM-heavy ones a few MB). More than this is an episode misbehaving.
RESULT_CAP_BYTES = 64 * 1024 * 1024
# The largest artifact file the worker places (integrity.MAX_ARTIFACT_BYTES reads none larger).
ARTIFACT_CAP_BYTES = 64 * 1024 * 1024
# What of the report the worker forwards to the harness (the result without the artifact).
FORWARD_CAP_BYTES = 64 * 1024
EXIT_CHILD_SETUP_FAILED = 70
RESULT_FD = 3  # where an episode process finds its result pipe
RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")  # TraceCore's run ids (runlog._validate_run_id)
PROTOCOL_VERSION = 1  # protocol.PROTOCOL_VERSION, harness side


_libc = None  # loaded once in the zygote; every episode process inherits it
_reindent = None  # msgspec.json.format, when the zygote could import it (_load_reindent)
_decode = None  # msgspec.json.decode, likewise: a report's JSON read ~5x faster than json.loads
# Instruction mode (``--instructions``): the zygote runs under Valgrind's callgrind, which
# writes one ``callgrind.out.<pid>`` per process into this folder as the process exits,
# its counters zeroed at each fork (--zero-before=PyOS_AfterFork_Child). Set from the
# environment by the zygote (``start``) and inherited by its workers.
CALLGRIND_DIR_ENV = "TRACECORE_PERF_CALLGRIND_DIR"
_callgrind_dir: str | None = None
# Instructions per second of user CPU this interpreter executes under callgrind, measured in
# the zygote on a fixed piece of Python (``_calibrate``). An episode that claims far fewer
# for the CPU it used had its counting zeroed or switched off (Valgrind client requests).
_counted_rate: float | None = None
COUNT_RATE_FLOOR = 0.3  # honest episodes of the default rows: 0.58-0.82 of the calibration's rate
COUNT_JUDGED_CPU_S = 0.05  # below this much CPU, translation dominates and the rate says nothing
M_ARENA_MAX = -8  # mallopt(3)
ADDRESS_SPACE_HEADROOM = 256 * 1024 * 1024  # reserved, unused address space an episode may hold beyond its limit


def prctl(option: int, value: int) -> bool:
    """Linux prctl(2); a no-op elsewhere. The harness's one prctl: the harness's own modules
    (strays, the Ray backend) use this one too."""
    global _libc
    if not sys.platform.startswith("linux"):
        return False
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc.prctl(option, value, 0, 0, 0) == 0


def _die_with_parent(sig: int, parent_pid: int) -> None:
    prctl(PR_SET_PDEATHSIG, sig)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


# --- inside the episode process ----------------------------------------------------------


def _load_reindent() -> None:
    """In the zygote (workers inherit it; a spawned episode never needs it): msgspec is
    optional, ``--python`` may name an interpreter that has TraceCore and nothing of ours."""
    global _reindent, _decode
    try:
        from msgspec.json import decode as _decode
        from msgspec.json import format as _reindent
    except ImportError:
        _reindent = _decode = None


def _loads(raw: bytes) -> object:
    """``json.loads``, the same values: msgspec's decoder where the zygote has it, and the
    standard library's for what msgspec does not read (NaN, a lone surrogate, a number out of
    range), which ``json.dumps`` writes and TraceCore's artifacts may hold."""
    if _decode is not None:
        try:
            return _decode(raw)
        except ValueError:  # msgspec.DecodeError and ValidationError are ValueErrors
            pass
    return json.loads(raw)


def persist_bytes(artifact: dict, compact: str | None = None) -> bytes:
    """``artifact`` as TraceCore's ``persist_run`` writes it: ``json`` with ``indent=2`` and
    ``ensure_ascii=False``. The standard library indents in pure Python (~0.5 ms for a
    13 KB artifact); when msgspec is importable (it is in the harness's own interpreter) the
    C encoder's compact text is re-indented by msgspec, the same bytes ~5x faster
    (tests/test_protocol.py holds the two together). NaN and Infinity, which ``json``
    writes and msgspec does not read, take the standard library's path. ``compact``:
    ``json.dumps(artifact, ensure_ascii=False)`` when the caller already has it."""
    if _reindent is not None:
        try:
            compact = json.dumps(artifact, ensure_ascii=False) if compact is None else compact
            return _reindent(compact.encode("utf-8"), indent=2)
        except ValueError:  # msgspec.DecodeError is one: NaN or Infinity in the artifact
            pass
    return json.dumps(artifact, ensure_ascii=False, indent=2).encode("utf-8")


def persist_bytes_within(artifact: dict, compact: str, cap: int) -> bytes | None:
    """:func:`persist_bytes`, or None when those bytes would be more than ``cap``, found out
    without making them. Indentation can multiply an artifact's size: each value on a line of
    its own behind two spaces per level, so 400 nested lists around a list of zeros grow ~400
    times (a 60 MB report, 24 GB). :func:`_indented_size_bound` clears ordinary artifacts
    with C-speed byte operations; any other is measured by the standard library's encoder
    piece by piece (nothing kept), which stops at ``cap``."""
    if _indented_size_bound(compact, cap) > cap:
        chars = 0
        for piece in json.JSONEncoder(ensure_ascii=False, indent=2).iterencode(artifact):
            chars += len(piece)
            if chars > cap:  # a character is at least one byte
                return None
    data = persist_bytes(artifact, compact)
    return data if len(data) <= cap else None


def _indented_size_bound(compact: str, cap: int) -> int:
    """An upper bound on the size of ``compact`` (``json.dumps(ensure_ascii=False)``) written
    with ``indent=2``, or ``cap + 1`` when it cannot show one within ``cap``; C-speed byte
    operations only (a few ms a megabyte where the bracket count alone cannot clear it). Each
    value and each closing bracket gets a line of its own, indented two spaces a level: at
    most ``commas + 2 * opening brackets`` lines of ``1 + 2 * depth`` more bytes. The depth is
    found from the brackets outside strings, innermost pairs removed one level per pass,
    stopping once it is deeper than ``cap`` allows."""
    # the size in bytes without encoding the text (the worker does so once, to write it)
    size = len(compact) if compact.isascii() else len(compact.encode("utf-8", "surrogatepass"))
    opens, commas = compact.count("[") + compact.count("{"), compact.count(",")
    lines = commas + 2 * opens + 1
    if size + lines * (1 + 2 * opens) <= cap:  # no deeper than its brackets: most artifacts
        return size + lines * (1 + 2 * opens)
    if size > cap:
        return cap + 1
    deepest = (cap - size) // lines // 2  # the most depth the cap allows
    raw = compact.encode("utf-8", "surrogatepass")
    if deepest < 1:  # an artifact is an object: one level at least
        return cap + 1
    # Escaped backslashes and quotes out, then only quotes and brackets kept; a pair of
    # adjacent quotes (an empty string, or two strings with nothing between) goes too, so
    # few strings are left to cut out: those that hold brackets.
    kept = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(_BRACES_AS_BRACKETS, _ALL_BUT_QUOTES_AND_BRACKETS)
    brackets = _outside_strings(kept.replace(b'""', b""))
    depth = 0
    while brackets and depth <= deepest:
        inner = brackets.replace(b"[]", b"")  # one level a pass: replace does not look again
        if inner == brackets:  # not nested pairs: not a text json wrote
            return cap + 1
        brackets, depth = inner, depth + 1
    return size + lines * (1 + 2 * depth) if not brackets else cap + 1


def _outside_strings(kept: bytes, piece: int = 1 << 16) -> bytes:
    """The bytes of ``kept`` (quotes and brackets only) outside its strings, 64 KiB at a time:
    a text of a million strings that hold brackets never becomes a million objects at once."""
    outside, inside = [], False
    for start in range(0, len(kept), piece):
        parts = kept[start : start + piece].split(b'"')
        outside.append(b"".join(parts[1 if inside else 0 :: 2]))
        inside ^= len(parts) % 2 == 0  # an odd number of quotes in this piece
    return b"".join(outside)


_ALL_BUT_QUOTES_AND_BRACKETS = bytes(set(range(256)) - set(b'"[]{}'))
_BRACES_AS_BRACKETS = bytes.maketrans(b"{}", b"[]")  # depth is depth, whichever the kind


def scaffold_bytes(compact: str) -> int:
    """TraceCore's performance-guide scaffold's artifact size, ``len(json.dumps(artifact,
    sort_keys=True).encode("utf-8"))``, from ``compact = json.dumps(artifact,
    ensure_ascii=False)``, which the worker makes anyway to write the artifact: the same
    items with the same separators in another key order (the same length), and the scaffold
    writes each character from DEL (0x7f) up as ``\\uXXXX`` (six characters; a surrogate
    pair, twelve, beyond the BMP) where ``compact`` has the character itself. One encoding
    fewer per episode (tests/test_protocol.py holds the two together)."""
    if compact.isascii() and "\x7f" not in compact:
        return len(compact)
    return len(compact) + sum(5 if ch <= "\uffff" else 11 for ch in compact if ch >= "\x7f")


def _telemetry(artifact: dict, compact: str) -> dict:
    """Artifact size (:func:`scaffold_bytes` of ``compact``) and LLM telemetry volume, counted
    as TraceCore's metrics module counts it: ``llm_trace`` entries of each action-trace step,
    prompt/completion bytes, tokens."""
    entries = prompt = completion = tokens = 0
    for step in artifact.get("action_trace") or []:
        if not isinstance(step, dict):
            continue
        for call in step.get("llm_trace") or []:
            if not isinstance(call, dict):
                continue
            entries += 1
            request = call.get("request") or {}
            response = call.get("response") or {}
            if isinstance(request.get("prompt"), str):
                prompt += len(request["prompt"].encode("utf-8"))
            if isinstance(response.get("completion"), str):
                completion += len(response["completion"].encode("utf-8"))
            if isinstance(response.get("tokens_used"), int):
                tokens += response["tokens_used"]
    return {
        "artifact_bytes": scaffold_bytes(compact),
        "llm_trace_entries": entries,
        "prompt_bytes": prompt,
        "completion_bytes": completion,
        "tokens_used": tokens,
    }


def run_episode(job: dict) -> dict:
    """Run one TraceCore episode in this process (cwd is the episode's scratch directory).
    Episode processes do not call this: they call ``run()`` from episode_process.py's module
    frame, with no frame of ours above it, then :func:`finish`; scripts/fork_cost.py does."""
    from agent_bench.runner.runner import run

    start = time.perf_counter()
    try:
        artifact = run(job["agent"], job["task_ref"], int(job["seed"]))
    except BaseException as exc:  # an agent may raise anything, SystemExit included
        artifact = exc
    return episode_result(artifact, time.perf_counter() - start)


def episode_result(artifact: dict | BaseException, episode_s: float) -> dict:
    """What an episode process reports once TraceCore's ``run()`` returned ``artifact`` (or
    raised it) after ``episode_s`` seconds: the ChildResult fields plus ``artifact``,
    TraceCore's run artifact itself, as ``run()`` made it. It travels to the worker over the
    result pipe, which no other process holds; the worker checks it, records it under the
    agent's name, runs the spec check (``--strict-spec``) and writes it into the run's
    ``.agent_bench/runs`` as TraceCore's ``persist_run`` would. Nothing of the evidence
    passes through a directory another episode could reach, and the episode process does
    TraceCore's work and little else (what an instruction count of it measures)."""
    if isinstance(artifact, BaseException):
        return {"completed": False, "episode_s": episode_s, "error": f"{type(artifact).__name__}: {artifact}"}
    return {"completed": True, "episode_s": episode_s, "run_id": artifact.get("run_id"), "artifact": artifact}


def finish(artifact: dict | BaseException, episode_s: float) -> NoReturn:
    """The end of an episode process: its report to its worker, on the result pipe (the
    only descriptor of ours it holds), its output flushed, and out, without the
    interpreter's teardown."""
    code = 0
    try:
        _write_all(RESULT_FD, json.dumps(episode_result(artifact, episode_s)).encode("utf-8"))
        sys.stdout.flush()
    except BaseException:  # noqa: BLE001 - nothing may escape an episode process
        import traceback

        traceback.print_exc()
        code = EXIT_CHILD_SETUP_FAILED
    try:
        sys.stderr.flush()
    finally:
        os._exit(code)


def _relabel(artifact: dict, label: str) -> None:
    """A packaged agent is loaded by absolute path (so nothing in a working directory can
    stand in for it) but recorded under the name the user gave, as TraceCore records it
    when it resolves that name itself; the artifact hash is recomputed by TraceCore."""
    artifact["agent"] = artifact["agent_ref"] = label
    try:
        from agent_bench.runner.runner import _inject_artifact_hash
    except ImportError:  # an older or newer TraceCore without it: keep its hash as it was
        return
    artifact.pop("artifact_hash", None)
    _inject_artifact_hash(artifact)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- probe and metrics: run in a forked child so the worker stays clean ------------------


def probe(request: dict) -> dict:
    """Resolve every agent file and task ref of the scenario, and name this interpreter and
    the installed code the run seals; no agent's code runs (``check_agent`` loads each file,
    in a process of its own, once the harness has sealed the code)."""
    import re
    from importlib import metadata

    from agent_bench.agent.loader import AGENTS_PACKAGE_ROOT, PACKAGE_ROOT
    from agent_bench.tasks.registry import get_task_descriptor

    agents: dict[str, dict] = {}
    for path in request.get("agents", []):
        candidates = [
            (os.path.join(request["cwd"], path), True),  # the user's own file
            (str(PACKAGE_ROOT / path), False),  # as TraceCore's loader resolves it
            (str(AGENTS_PACKAGE_ROOT / os.path.basename(path)), False),
        ]
        found = next(((c, own) for c, own in candidates if os.path.isfile(c)), None)
        if found is None:
            agents[path] = {"ok": False, "error": "no such agent file (not a file, nor a TraceCore agent)"}
            continue
        # Episodes load every agent by absolute path, so nothing an episode writes into a
        # working directory can stand in for it; a packaged agent keeps the name the user
        # gave as its label, so TraceCore's artifacts and metrics group by that name.
        resolved = os.path.realpath(found[0])
        agents[path] = {"ok": True, "resolved": resolved, "label": resolved if found[1] else path}

    tasks: dict[str, dict] = {}
    for ref in request.get("task_refs", []):
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(?:@(\d+))?", ref)
        if not match:
            tasks[ref] = {"ok": False, "error": "malformed task ref (expected <task_id>@<version>)"}
            continue
        version = int(match.group(2)) if match.group(2) else None
        try:
            descriptor = get_task_descriptor(match.group(1), version)
        except Exception as exc:  # a broken plugin registry is the user's problem to see
            tasks[ref] = {"ok": False, "error": f"task registry failed: {exc}"}
            continue
        tasks[ref] = {"ok": True} if descriptor else {"ok": False, "error": "no installed task of that name and version"}

    try:
        version = metadata.version("tracecore")
    except metadata.PackageNotFoundError:
        version = "unknown"
    import agent_bench

    tracecore_dir = os.path.dirname(os.path.abspath(agent_bench.__file__))
    tracecore_packages = _tracecore_packages(tracecore_dir)
    loaded_packages = _loaded_packages(tracecore_packages)
    for folder in [*tracecore_packages, *loaded_packages]:
        if os.path.isdir(folder):
            _compile_package(folder)
    return {
        "lacks": _tracecore_lacks(),
        "sandbox_error": _sandbox().probe() if request.get("sandbox") else None,
        "single_process_error": _sandbox().probe_single_process() if request.get("single_process") else None,
        "executable": sys.executable,
        "tracecore_dir": tracecore_dir,
        "tracecore_packages": tracecore_packages,
        "loaded_packages": loaded_packages,
        "site_dirs": _site_dirs(),
        "python_version": sys.version.split()[0],
        "python_build": " ".join(sys.version.split()),
        "tracecore_version": version,
        "environment": _environment(),
        "agents": agents,
        "tasks": tasks,
    }


def check_agent(job: dict) -> NoReturn:
    """``[script, "check-agent", JOB]``: load one agent file (``job["path"]``) with TraceCore's
    loader, as an episode will (its module's code runs), answer ``{"problem": null or why}``
    on the pipe the harness gave as stdout, and exit. The process is the harness's
    (``agent_check.py``), not the zygote's: it holds nothing of the run's. Before the module
    runs, the answer pipe moves off stdout (the module's prints go nowhere), and the process
    is confined as an episode will be: its scratch directory, ``--sandbox``, one process
    under ``--instructions``. A check that fails to confine itself answers nothing."""
    code = 0
    try:
        answer = os.dup(1)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        os.chdir(job["scratch"])
        if job.get("sandbox"):  # returns in the sandboxed process
            _sandbox().enter(job["scratch"], job["scratch_root"], job.get("hidden") or [])
        if job.get("single_process"):
            _sandbox().forbid_new_processes()
        verdict = {"problem": _agent_class_problem(job["path"])}
        _write_all(answer, json.dumps(verdict).encode("utf-8"))
    except BaseException:  # noqa: BLE001 - no answer is a refusal; nothing else to say
        code = EXIT_CHILD_SETUP_FAILED
    os._exit(code)


# What the harness uses of TraceCore beyond ``run()`` and the loaders, and only where the
# episode interpreter's TraceCore has it: both arrived in 1.0.0 (0.9.5 is the oldest release
# with the runner, the toy agent and the scenario's tasks).
OPTIONAL_TRACECORE = {"spec_check": "agent_bench.runner.spec_check", "metrics": "agent_bench.runner.metrics"}


def _has_module(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def _tracecore_lacks() -> dict[str, str]:
    """Each optional part this TraceCore lacks (or cannot use), and why."""
    lacks = {
        name: f"{module} arrived in TraceCore 1.0.0" for name, module in OPTIONAL_TRACECORE.items() if not _has_module(module)
    }
    if "spec_check" not in lacks:
        # TraceCore 1.0.0's wheel left out the schema its checker reads (it looks beside the
        # package): the checker then fails every artifact. Its own words say so.
        from agent_bench.runner.spec_check import check_spec_compliance

        unusable = [str(e) for e in check_spec_compliance({}).get("errors", []) if "cannot load schema" in str(e)]
        if unusable:
            lacks["spec_check"] = f"its spec checker cannot run ({unusable[0][:200]})"
    return lacks


def _tracecore_packages(tracecore_dir: str) -> list[str]:
    """Every top-level package TraceCore's distribution installs: ``agent_bench`` and the
    ``tasks`` its episodes load (their validators decide success), each a folder."""
    import importlib.util
    from importlib import metadata

    folders = [tracecore_dir]
    try:
        dist = metadata.distribution("tracecore")
        names = (dist.read_text("top_level.txt") or "").split() or sorted({f.parts[0] for f in dist.files or []})
    except metadata.PackageNotFoundError:
        names = []
    # where the import system finds each (an editable install's too); never its metadata,
    # nor what it installs beside the site directory (``../../bin``)
    for name in names:
        if name.isidentifier():
            with contextlib.suppress(ImportError, ValueError):
                spec = importlib.util.find_spec(name)
                folders += list(spec.submodule_search_locations or []) if spec else []
    return sorted({os.path.realpath(folder) for folder in folders if os.path.isdir(folder)})


def _loaded_packages(tracecore_packages: list[str]) -> list[str]:
    """The other installed packages (folders, or single-file modules) this process, a child of
    the zygote, has code loaded from before any agent's: the workers' verdict (jsonschema
    and what it imports, jsonschema-rs, msgspec) and TraceCore's dependencies. The run seals
    them; the standard library is not sealed."""
    import sysconfig

    # where installed code is imported from: the site directories and every other entry of
    # sys.path (a .pth file's, PYTHONPATH's), not the standard library's nor this file's own
    not_installed = {os.path.realpath(sysconfig.get_path(name)) for name in ("stdlib", "platstdlib")}
    not_installed |= {os.path.join(folder, "lib-dynload") for folder in not_installed}
    not_installed.add(os.path.dirname(os.path.realpath(__file__)))
    roots = {os.path.realpath(folder) for folder in [*_site_dirs(), *sys.path] if folder and os.path.isdir(folder)}
    roots = sorted(roots - not_installed, key=len, reverse=True)  # the innermost root first
    found: set[str] = set()
    for module in list(sys.modules.values()):
        for path in (getattr(module, "__file__", None), getattr(module, "__cached__", None)):
            if not isinstance(path, str) or not os.path.exists(path):  # bytecode never written
                continue
            path = os.path.realpath(path)
            root = next((r for r in roots if path.startswith(r + os.sep)), None)
            if root is None:
                continue
            top = path[len(root) + 1 :].split(os.sep)[0]
            # a package's folder; a single-file module (and its bytecode, in the shared
            # __pycache__) by itself
            found.add(os.path.join(root, top) if top != "__pycache__" else path)
    return sorted(found - set(tracecore_packages))


def _compile_package(package_dir: str) -> None:
    """Byte-compile a sealed package where its ``.pyc`` files are missing, as ``pip install``
    does: the run seals them, and one written by an import during the run would read as a
    change. Not when this interpreter is told not to write bytecode."""
    if sys.dont_write_bytecode:
        return
    import compileall

    with contextlib.suppress(OSError):
        compileall.compile_dir(package_dir, quiet=2, maxlevels=sys.getrecursionlimit())  # 3.8's default stops at 10


def _environment() -> dict:
    """What this interpreter has installed, as the import system sees it (the first of a name
    on ``sys.path`` wins): each distribution's version, which run from a source tree in place
    (an editable install, PEP 660 or ``setup.py develop``: their code is read from the tree,
    without the bytecode an installed copy has), and where TraceCore was installed from (PEP
    610's ``direct_url.json``: a local tree, a VCS URL, an archive; none from an index). An
    instruction count moves with all of these, so two runs compare only when they agree."""
    from importlib import metadata

    site = {os.path.realpath(folder) for folder in _site_dirs() if os.path.isdir(folder)}
    versions: dict[str, str] = {}
    editable: list[str] = []
    sources: dict[str, str] = {}
    for dist in metadata.distributions():
        name = re.sub(r"[-_.]+", "-", (dist.metadata.get("Name") or "")).lower()
        if not name or name in versions:
            continue
        versions[name] = dist.version or "unknown"
        direct = {}
        with contextlib.suppress(Exception):
            direct = json.loads(dist.read_text("direct_url.json") or "{}")
        where = os.path.realpath(str(dist.locate_file("")))
        if (direct.get("dir_info") or {}).get("editable") or (site and where not in site):
            editable.append(name)  # installed in place, or found outside every site directory
        if name == "tracecore":
            url = direct.get("url", "")
            kind = "vcs" if "vcs_info" in direct else "archive" if "archive_info" in direct else "tree" if url else "index"
            sources[name] = f"{kind} {url}".strip()
    return {
        "distributions": dict(sorted(versions.items())),
        "editable": sorted(editable),
        "tracecore_source": sources.get("tracecore", ""),
        "implementation": sys.implementation.name,
    }


def _site_dirs() -> list[str]:
    """The site directories this interpreter starts from (their .pth files run at start-up)."""
    import site

    folders = list(getattr(site, "getsitepackages", list)())
    if site.ENABLE_USER_SITE:
        folders.append(site.getusersitepackages())
    # those that do not exist yet too: one that appears during the run, with a .pth in it, is a change
    return list(dict.fromkeys(folders))


def _agent_class_problem(path: str) -> str | None:
    """Load the file with TraceCore's own loader, as an episode will, and find its agent
    class (without instantiating it). None when it loads; else what is wrong."""
    from agent_bench.agent import loader

    try:
        if hasattr(loader, "_load_module") and hasattr(loader, "_find_agent_class"):
            loader._find_agent_class(loader._load_module(path))
        else:  # a TraceCore without those helpers: its public loader (instantiates)
            loader.load_agent(path)
    except SyntaxError as exc:
        return f"not loadable Python: {exc.msg} (line {exc.lineno})"
    except BaseException as exc:  # noqa: BLE001 - an agent's module may raise anything
        return f"TraceCore's loader cannot load an agent class from it: {type(exc).__name__}: {exc}"
    return None


def metrics(request: dict) -> dict:
    """TraceCore's own metrics pipeline over exactly this run's artifacts (cwd = run dir)."""
    from agent_bench.runner.metrics import compute_all_metrics

    return {"rows": _numbers_or_null(compute_all_metrics(limit=max(int(request.get("limit", 1)), 1)))}


def _numbers_or_null(value: object) -> object:
    """``value`` with each NaN or infinity as None: an artifact may hold one (Python's ``json``
    writes and reads them) and TraceCore's metrics average it in, but JSON has no such number
    (the harness's reader, and the published file, would reject every row for one figure)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _numbers_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numbers_or_null(item) for item in value]
    return value


# Modules the zygote imports for the harness's own work (its sockets, prctl, the workers'
# artifact encoding and spec check), not for TraceCore's: an episode process takes them out
# of its sys.modules (``_as_tracecore_runs``). TraceCore's sandbox guard looks frames up in
# inspect.getmodule, which walks every module in sys.modules when a frame's file is not one
# (an agent's, a task's): sixty modules of jsonschema left there cost a rate_limited_api
# episode ~7% more instructions than TraceCore run on its own.
_harness_modules: set[str] = set()


@contextlib.contextmanager
def _harness_imports():
    before = set(sys.modules)
    try:
        yield
    finally:
        _harness_modules.update(set(sys.modules) - before)


def _as_tracecore_runs() -> None:
    """In an episode process, before TraceCore runs: sys.modules as a TraceCore process has
    it (the modules stay loaded; the workers keep using them)."""
    for name in _harness_modules:
        sys.modules.pop(name, None)


def warm_runtime() -> None:
    """Pay once, in the zygote, what every forked child would otherwise pay: TraceCore's
    imports, the sandbox guard's source caches; and the workers' verdict. Done as the zygote
    starts, while the harness is still importing its own libraries. No agent code runs here."""
    import inspect

    import agent_bench
    import agent_bench.runner.runner  # noqa: F401

    # The verdict before the caches below: loaded after them, it costs every episode ~0.3%
    # more instructions (a toy episode 35.96 M against 35.86 M, counted with --instructions).
    with _harness_imports():
        warm_verdict()
    # TraceCore's sandbox guard calls inspect.stack() on every file access, which reads
    # source through linecache and maps files to modules through inspect's caches. A
    # forked child inherits those caches; a cold one costs it ~15 ms per episode.
    package_root = os.path.dirname(agent_bench.__file__)
    for folder, _, files in os.walk(package_root):
        _cache_sources(os.path.join(folder, name) for name in files if name.endswith(".py"))
    inspect.stack()


_verdict_warm = False  # warm_verdict ran in this process


def warm_verdict() -> None:
    """Load, in the zygote and before any episode, in both isolation modes, all the worker's
    own verdict on an episode runs: TraceCore's runner (its artifact hash), its spec check
    with its jsonschema stack, the compiled schema walk (:func:`_load_spec_walk`), msgspec's
    decoder and re-indenter. Every
    worker inherits them loaded, so nothing an episode writes into their installed files
    reaches a worker's verdict; and those files are under the run's seal (the probe names
    them: :func:`_loaded_packages`), so no replacement zygote starts from changed ones. Once
    per process."""
    global _verdict_warm
    if _verdict_warm:
        return
    _verdict_warm = True
    with contextlib.suppress(ImportError):
        import agent_bench.runner.runner  # noqa: F401 - its hash, which _relabel recomputes
    if _has_module(OPTIONAL_TRACECORE["spec_check"]):
        from agent_bench.runner.spec_check import check_spec_compliance

        check_spec_compliance({})
        _load_spec_walk()
    _load_reindent()


def warm(scenario: list[dict]) -> None:
    """The scenario's share of the warming: its tasks in the task registry, their and the
    agents' source in the caches; then the zygote's objects out of the children's
    collections."""
    from agent_bench.tasks.loader import load_task

    sources: set[str] = set()
    for row in scenario:
        try:
            task_id, _, version = row["task_ref"].partition("@")
            task = load_task(task_id, int(version) if version else None)
        except Exception:  # noqa: BLE001 - a bad row is reported by the probe, not here
            continue
        if task.get("path"):
            sources.update(str(p) for p in task["path"].glob("*.py"))
        if os.path.isfile(row.get("agent", "")):
            sources.add(row["agent"])
    _cache_sources(sources)
    import gc
    import inspect

    inspect.stack()

    gc.collect()
    gc.freeze()  # keep the server's objects out of the children's collections (fewer page copies)


def _cache_sources(paths) -> None:
    import linecache

    for path in paths:
        linecache.getlines(path)


class _Deadline(BaseException):
    """A warm-up episode ran past its deadline (raised by SIGALRM inside it)."""


def rehearse(command: dict) -> list[str]:
    """Warm-up, in the zygote itself: run ``episodes`` episodes of each row and discard them,
    so what only a real episode warms (TraceCore's lazy imports and caches, the task's and
    the agent's modules, the sandbox guard's source caches) is warm in every process forked
    from here, as in a long-lived TraceCore service. Pays for it once per run, like pyperf's
    and hyperfine's warm-up runs, which are never measured. Each episode is bounded by
    SIGALRM; whatever an episode raises is that row's failure (one line), never the zygote's.
    Returns the failures."""
    import gc

    from agent_bench.runner.runner import run

    failures: list[str] = []
    home = os.getcwd()
    scratch = tempfile.mkdtemp(prefix="warmup-", dir=command.get("scratch_root"))

    def expire(signum, frame):  # noqa: ARG001 - signal handler signature
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, expire)
    try:
        os.chdir(scratch)
        for number, row in enumerate(command.get("rows", [])):
            for i in range(int(command.get("episodes", 0))):
                signal.setitimer(signal.ITIMER_REAL, float(command.get("deadline_s", 30)))
                try:
                    artifact = run(row["agent"], row["task_ref"], int(row.get("seed", 0)) + i)
                    label = row.get("agent_label")
                    if label and label != row["agent"]:
                        _relabel(artifact, label)  # the same work a worker does with each artifact
                    json.dumps(artifact)
                except _Deadline:
                    deadline = command.get("deadline_s")
                    failures.append(f"row {number} ({row['agent_label']}): a warm-up episode ran past {deadline} s")
                    break
                except BaseException as exc:  # noqa: BLE001 - an agent may raise anything
                    failures.append(f"row {number} ({row['agent_label']}): {type(exc).__name__}: {str(exc)[:200]}")
                    break
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
        os.chdir(home)
        remove_tree(scratch)
    gc.collect()
    gc.freeze()  # what the warm-up allocated stays out of the children's collections too
    return failures


# --- the process roles -------------------------------------------------------------------
#
# Every fork happens in serve()'s loop; an episode process returns from it, so TraceCore's
# run() is called from episode_process.py's short module frame with nothing of ours above
# it. TraceCore's sandbox guard calls inspect.stack() on every file access, and each frame
# under it costs instructions on every call. A role (the zygote, a worker) answers its
# commands and says what to fork next.


class WorkerFork:
    """What the zygote asks the fork loop to fork: a worker, serving the harness on ``channel``."""

    def __init__(self, channel: int) -> None:
        self.channel = channel


class EpisodeFork:
    """What a worker asks the fork loop to fork: the process of one episode (``job``: the Run
    command), working in ``scratch``, reporting on one pipe and printing into another."""

    def __init__(self, job: dict, scratch: str) -> None:
        self.job = job
        self.scratch = scratch
        self.result_r, self.result_w = os.pipe()
        self.output_r, self.output_w = os.pipe()


class _Role:
    """What the zygote and a worker share: they greet the harness once, then take commands."""

    greeted = False

    def send(self, message: dict) -> None:
        raise NotImplementedError

    def greet_once(self) -> None:
        if not self.greeted:
            self.send({"event": "ready", "pid": os.getpid(), "protocol": PROTOCOL_VERSION})
            self.greeted = True

    def bye(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.send({"event": "bye", "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime})


class Worker(_Role):
    """One per worker slot: forks one episode process per ``run`` command and supervises it."""

    def __init__(self, isolation: str, channel: int) -> None:
        self.isolation = isolation
        self.channel = channel  # a Unix socket to the harness, both directions
        self.inbox = b""
        self.current_pgid: int | None = None

    # protocol ---------------------------------------------------------------------------
    def send(self, message: dict) -> None:
        _write_all(self.channel, json.dumps(message).encode("utf-8") + b"\n")

    def read_command(self, block: bool) -> dict | None:
        while b"\n" not in self.inbox:
            if not block and not select.select([self.channel], [], [], 0)[0]:
                return None
            chunk = os.read(self.channel, 65536)
            if not chunk:  # the harness closed our socket: it is gone or done
                return {"cmd": "exit"}
            self.inbox += chunk
        line, self.inbox = self.inbox.split(b"\n", 1)
        return json.loads(line)

    # lifecycle --------------------------------------------------------------------------
    def on_terminate(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        """Our parent died (PDEATHSIG) or we were told to stop: take the episode with us, and
        the artifact of an episode whose row the harness never got (it runs again, or not)."""
        self.kill_tree(signal.SIGKILL)
        self.kill_leftovers()
        _take_back_placed()
        os._exit(128 + signum)

    def next_fork(self) -> EpisodeFork | None:
        """Answer commands until one needs an episode process; None means exit."""
        self.greet_once()
        while True:
            command = self.read_command(block=True)
            kind = command.get("cmd")
            if kind == "run":
                # A fresh working directory per episode, outside the run directory: nothing
                # one episode leaves in its cwd is seen by another.
                scratch = tempfile.mkdtemp(prefix="ep-", dir=command.get("scratch_root"))
                if command.get("sandbox"):
                    _sandbox()  # loaded here, once per worker: its episodes inherit it
                sys.stdout.flush()
                sys.stderr.flush()
                return EpisodeFork(command, scratch)
            if kind == "exit":
                self.bye()
                return None
            # a "kill" that arrives while idle is for an episode that already ended

    def become_episode(self, fork: EpisodeFork, worker_pid: int) -> None:
        """In the forked child: its own process group, dies with the worker, default
        signals, output into the capture pipe, the result pipe at fd 3 and no other
        descriptor of ours, its scratch directory as working directory."""
        os.setpgid(0, 0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
        _die_with_parent(signal.SIGKILL, worker_pid)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(fork.output_w, 1)
        os.dup2(fork.output_w, 2)
        os.dup2(fork.result_w, RESULT_FD)
        os.closerange(RESULT_FD + 1, _fd_limit())
        os.chdir(fork.scratch)
        _bound_memory(fork.job.get("memory_limit"))
        if fork.job.get("sandbox"):  # returns only in the sandboxed episode
            _sandbox().enter(
                fork.scratch, fork.job.get("scratch_root") or os.path.dirname(fork.scratch), fork.job.get("sandbox_hidden") or []
            )
        if _callgrind_dir is not None:  # one process, counted whole (episode_sandbox.forbid_new_processes)
            _sandbox().forbid_new_processes()

    def supervise(self, pid: int, fork: EpisodeFork) -> None:
        """In the worker, once the episode process is forked: watch it to its end, clean up
        after it, check what it reported, and send the harness its ``done``."""
        self.current_pgid = pid
        # the episode makes its own group too (become_episode); made here as well, a kill that
        # comes before the child got that far (a very short timeout) still finds the group
        with contextlib.suppress(OSError):
            os.setpgid(pid, pid)
        forget_count(pid)
        os.close(fork.result_w)
        os.close(fork.output_w)
        report = bytearray()
        output = _CappedLog(fork.job.get("log_path"), int(fork.job.get("output_cap", 1024 * 1024)))
        streams = {fork.result_r: report, fork.output_r: output}
        status, usage, killed = self._watch(pid, streams, fork.scratch)
        ended_at = time.time()
        # The episode is over: nothing it started may outlive it (nor touch its count).
        self.kill_tree(signal.SIGKILL)
        leftovers, extra_user, extra_sys = self.kill_leftovers()
        self.current_pgid = None
        instructions, count_error = episode_instructions(pid, ended_at)
        for fd in list(streams):  # every writer is dead now, so these reach EOF
            while chunk := os.read(fd, 65536):
                _append(streams[fd], chunk)
            os.close(fd)
        output.close()
        # SIGTERM (the zygote died) is held while an artifact is placed and while its row is
        # sent: the handler takes back an artifact the harness has no row for, and must find
        # exactly that one (never a file placed a moment before it knew, nor one just reported).
        with _sigterm_held():
            checked = _check_report(report, fork.job)
        if instructions is not None and (checked.get("artifact") or {}).get("success"):
            count_error = implausible_count(instructions, usage.ru_utime)
        if count_error:
            instructions = None  # never a figure
        message = {
            "event": "done",
            "returncode": os.waitstatus_to_exitcode(status),
            "killed": killed,
            "cpu_user_s": usage.ru_utime + extra_user,
            "cpu_sys_s": usage.ru_stime + extra_sys,
            "max_rss_bytes": usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024),
            "output_bytes": output.total,
            "leftover_processes": leftovers,
            "instructions": instructions,
            "count_error": count_error if _callgrind_dir is not None else None,
            **checked,
        }
        del report
        remove_tree(fork.scratch)
        with _sigterm_held():
            self.send(message)
            _forget_placed()

    def _watch(self, pid: int, streams: dict, scratch: str) -> tuple[int, resource.struct_rusage, bool]:
        """Until the episode process exits: drain its output and report, and obey the
        harness (``kill``: SIGTERM now, SIGKILL after the grace; ``exit``: the harness is
        going away, so kill everything and go). Returns its wait status, the kernel's
        accounting of it and whether it was killed on request."""
        killed = False
        kill_deadline: float | None = None
        try:
            pidfd = os.pidfd_open(pid)
        except (AttributeError, OSError):  # no pidfd here (under Valgrind 3.19: ENOSYS)
            pidfd = None
        try:
            while True:
                watch = [self.channel, *streams] + ([pidfd] if pidfd is not None else [])
                timeout = 0.05 if pidfd is None else None  # no pidfd: poll the child
                if kill_deadline is not None:
                    remaining = max(kill_deadline - time.monotonic(), 0)
                    timeout = remaining if timeout is None else min(timeout, remaining)
                # A command read with the run's (a kill sent right after it: a timeout shorter
                # than the fork) waits in the inbox, where select cannot see it.
                queued = b"\n" in self.inbox
                ready, _, _ = select.select(watch, [], [], 0 if queued else timeout)
                if queued or self.channel in ready:
                    command = self.read_command(block=False) or {}
                    if command.get("cmd") == "kill" and not killed:
                        killed = True
                        self.kill_tree(signal.SIGTERM)
                        kill_deadline = time.monotonic() + float(command.get("grace", 1.0))
                    elif command.get("cmd") == "exit":
                        self.kill_tree(signal.SIGKILL)
                        self.kill_leftovers()
                        remove_tree(scratch)
                        os._exit(0)
                for fd in [fd for fd in ready if fd in streams]:
                    chunk = os.read(fd, 65536)
                    if chunk:
                        _append(streams[fd], chunk)
                    else:
                        os.close(fd)
                        del streams[fd]
                if kill_deadline is not None and time.monotonic() >= kill_deadline:
                    self.kill_tree(signal.SIGKILL)
                    kill_deadline = None
                if pidfd is None or pidfd in ready:
                    waited, status, usage = os.wait4(pid, 0 if pidfd is not None else os.WNOHANG)
                    if waited == pid:
                        return status, usage, killed
        finally:
            if pidfd is not None:
                os.close(pidfd)

    def kill_tree(self, sig: int) -> None:
        """Signal the episode's process group; SIGCONT after a SIGTERM, since a stopped
        process only acts on it once continued (SIGKILL needs no help)."""
        if self.current_pgid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.current_pgid, sig)
            if sig != signal.SIGKILL:
                os.killpg(self.current_pgid, signal.SIGCONT)

    @staticmethod
    def kill_leftovers() -> tuple[int, float, float]:
        """Kill and reap every process re-parented to us (we are a subreaper), repeating
        until none is left, since killing one re-parents its own children to us."""
        count, user, system = 0, 0.0, 0.0
        while kids := _children():
            for kid in kids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)
            for kid in kids:
                try:
                    _, _, usage = os.wait4(kid, 0)
                except ChildProcessError:
                    continue
                count += 1
                user += usage.ru_utime
                system += usage.ru_stime
        return count, user, system


_sandbox_module = None


def _sandbox():
    """episode_sandbox.py (``--sandbox``), loaded by path like this file, on first use."""
    global _sandbox_module
    if _sandbox_module is None:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "episode_sandbox.py")
        module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("tracecore_perf_episode_sandbox", path))
        with open(path, "rb") as fh:  # from its source, as episode_process.py loads this file
            exec(compile(fh.read(), path, "exec"), module.__dict__)  # noqa: S102 - our own file
        _sandbox_module = module
    return _sandbox_module


def _bound_memory(limit: int | None) -> None:
    """In an episode process: the first the kernel's OOM killer takes (oom_score_adj 1000, so
    the harness and the other episodes are spared), and its memory bounded: its data segment
    (RLIMIT_DATA: Python raises MemoryError past it) and what it maps beyond what it was
    forked with (RLIMIT_AS: shared mappings, a memfd, which the data limit does not count).
    Under Valgrind the limits are Valgrind's to keep, and do not bound the episode."""
    with contextlib.suppress(OSError):
        fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY)
        try:
            os.write(fd, b"1000")
        finally:
            os.close(fd)
    if not limit or _callgrind_dir is not None:
        return
    with contextlib.suppress(ValueError, OSError, AttributeError):
        resource.setrlimit(resource.RLIMIT_DATA, (int(limit), int(limit)))
        # Address space is reserved, not used, by each thread's stack (8 MiB) and each malloc
        # arena (64 MiB): at most two arenas, and room for them and for stacks above the limit,
        # so a threaded agent is bounded by what it uses, not by what glibc reserves.
        global _libc
        if _libc is None:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mallopt(M_ARENA_MAX, 2)
        with open("/proc/self/statm", "rb") as fh:
            mapped = int(fh.read().split()[0]) * resource.getpagesize()
        bound = mapped + int(limit) + ADDRESS_SPACE_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (bound, bound))


def episode_instructions(pid: int, ended_at: float) -> tuple[int | None, str | None]:
    """In instruction mode, the user-space instructions the episode process ``pid`` executed
    from its fork to its exit (the ``summary:`` line of the file callgrind wrote as it exited;
    ``totals:`` also counts the frames that were live at the zeroing), and why there is no
    such figure: no file (a killed process writes none), a file that is not the one callgrind
    wrote at its exit (a link, another kind of file, one changed after ``ended_at``), counts
    dumped mid-run (a client request, which zeroes them), a count out of range. The files are
    removed. (None, None) outside instruction mode."""
    if _callgrind_dir is None:
        return None, None
    name = f"callgrind.out.{pid}"
    parts = [entry for entry in os.listdir(_callgrind_dir) if entry.startswith(f"{name}.")]
    try:
        header = _count_header(os.path.join(_callgrind_dir, name), ended_at)
    finally:
        for entry in [name, *parts]:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(_callgrind_dir, entry))
    if isinstance(header, str):
        return None, header
    if parts or not re.search(rb"^desc: Trigger: Program termination$", header, re.MULTILINE):
        return None, "it had callgrind dump its counts before its end (a client request, which zeroes them)"
    # Each of these once, and as callgrind writes them: text an agent writes into Valgrind's
    # memory (the command line it keeps for the header) would add lines, never take its own away.
    lines = header.splitlines()
    keys = [b"pid:", b"part:", b"desc: Trigger:", b"events:", b"summary:"]
    if any(sum(line.startswith(key) for line in lines) != 1 for key in keys) or f"pid: {pid}".encode() not in lines:
        return None, "its count file is not one process's count as callgrind writes it (lines added to its header)"
    count = _summary(header)
    if count is None or not 0 < count < 2**63:
        return None, f"its count file holds no count of one process ({count})"
    return count, None


def forget_count(pid: int) -> None:
    """Remove whatever stands at the names callgrind will write ``pid``'s count under, as soon
    as ``pid`` is forked: a link or file planted there before (by an agent file's check, or an
    episode, for pids to come) is never taken for its count."""
    if _callgrind_dir is None:
        return
    name = f"callgrind.out.{pid}"
    with contextlib.suppress(OSError):
        for entry in os.listdir(_callgrind_dir):
            if entry == name or entry.startswith(f"{name}."):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(_callgrind_dir, entry))


def _count_header(path: str, ended_at: float) -> bytes | str:
    """The head of the count file at ``path`` if it is the one callgrind wrote as the process
    ended (a regular file of one name, unchanged since ``ended_at``), else why not."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return "callgrind wrote no count for it"
    except OSError:
        return "its count file was replaced (a link, or not a file)"
    try:
        facts = os.fstat(fd)
        if not stat.S_ISREG(facts.st_mode) or facts.st_nlink != 1:
            return "its count file was replaced (not a regular file, or linked elsewhere)"
        if facts.st_ctime > ended_at:
            return "its count file changed after the episode process ended"
        return os.read(fd, 8192)
    finally:
        os.close(fd)


def implausible_count(count: int, cpu_user_s: float) -> str | None:
    """Why ``count`` cannot be what an episode that used ``cpu_user_s`` of CPU under callgrind
    executed, or None: far fewer instructions than this interpreter executes in that time."""
    if _counted_rate is None or cpu_user_s < COUNT_JUDGED_CPU_S:
        return None
    if _counted_rate <= 0:
        return "this interpreter's rate under Valgrind could not be measured (its calibration lost its count): no count is judged"
    expected = _counted_rate * cpu_user_s
    if count >= COUNT_RATE_FLOOR * expected:
        return None
    return (
        f"{count / 1e6:.1f} M instructions counted for {cpu_user_s:.2f} s of CPU under Valgrind, under "
        f"{COUNT_RATE_FLOOR:.0%} of the {_counted_rate / 1e6:.0f} M per second this interpreter executes there: "
        "its counting was zeroed or switched off (Valgrind client requests)"
    )


def _calibrate() -> float:
    """In the zygote, under callgrind: the instructions per second of user CPU a forked child
    executes on a fixed piece of Python, from its count file and ``wait4``; 0.0 when three
    tries lost their count (every count of the run is then no figure: never unjudged)."""
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            total, table = 0, {}
            for i in range(60000):
                total += i % 7
                if i % 4 == 0:
                    table[str(i)] = total
            os._exit(0)
        forget_count(pid)
        _, _, usage = os.wait4(pid, 0)
        count, _ = episode_instructions(pid, time.time())
        if count and usage.ru_utime > 0:
            return count / usage.ru_utime
    return 0.0


def callgrind_count(path: str) -> int | None:
    """The instructions in callgrind's file ``path``: its ``summary:`` line, everything the
    process executed after its counters were zeroed (``totals:`` also counts the frames that
    were live then). None when there is no such file or line (a process killed mid-write)."""
    try:
        with open(path, "rb") as fh:
            return _summary(fh.read(8192))
    except OSError:
        return None


def _summary(header: bytes) -> int | None:
    match = re.search(rb"^summary: (\d+)$", header, re.MULTILINE)
    return int(match.group(1)) if match else None


def _children() -> list[int]:
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _fd_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if 0 < soft < 1 << 20 else 1 << 20


def _check_report(raw: bytearray, job: dict) -> dict:
    """The episode's report, only if it is one JSON object within the cap. Its ``artifact``
    (when the report claims a finished run) must be that run's, and is placed into the run;
    the rest is forwarded to the harness, which checks its fields against their types, with
    the spec check's errors (``--strict-spec``), which are the worker's to find, never the
    episode's to claim. Anything else is the episode's failure, never the worker's."""
    if not raw:
        return {"result": None}
    if len(raw) >= RESULT_CAP_BYTES:
        return {"result": None, "result_error": f"bad result: more than the {RESULT_CAP_BYTES >> 20} MiB a report may take"}
    try:
        report = _loads(bytes(raw))
    except (ValueError, RecursionError) as exc:
        return {"result": None, "result_error": f"bad result: not one JSON value ({str(exc)[:200]})"}
    if not isinstance(report, dict):
        return {"result": None, "result_error": f"bad result: a JSON {type(report).__name__}, not an object"}
    artifact = report.pop("artifact", None)
    report.pop("spec_errors", None)
    try:
        forwarded = json.dumps(report)
    except (ValueError, RecursionError):
        forwarded = ""
    if not forwarded or len(forwarded) > FORWARD_CAP_BYTES:
        return {"result": None, "result_error": "bad result: its fields are not plain values of a few KiB"}
    answer: dict = {"result": report}
    if report.get("completed") is True:
        placed = _place_artifact(artifact, report.get("run_id"), job)
        spec_errors = placed.pop("spec_errors", None)
        if spec_errors is not None:
            report["spec_errors"] = spec_errors
        answer.update(placed)
    return answer


def _spec_errors(artifact: dict) -> list[str]:
    """TraceCore's spec check of the artifact (``--strict-spec``): its first errors.

    TraceCore's check is a jsonschema walk of the artifact over its artifact schema (~10 M
    instructions for a 13 KB artifact, two thirds of a worker's work per episode) plus its
    own rules. Where jsonschema-rs compiled that schema (:func:`_load_spec_walk`) and finds
    the artifact valid, TraceCore's check runs with the walk's answer ("no schema errors")
    already given; anything jsonschema-rs rejects, or cannot read, gets TraceCore's whole
    check, so every error is TraceCore's own words. tests/test_spec_walk.py holds the two
    answers equal over the shipped agents' artifacts and each way to break the schema. The
    artifact is decoded JSON: lists, never tuples (which jsonschema-rs reads as arrays and
    jsonschema does not)."""
    from agent_bench.runner import spec_check

    warm_verdict()  # loaded in the zygote already; here for a caller that is not a worker
    if _schema is None:  # a checker not built as _schema_walk_answered expects: as it ships
        return _first_errors(spec_check.check_spec_compliance(artifact))
    valid = False
    if _schema_is_valid is not None:
        try:
            valid = bool(_schema_is_valid(artifact))
        except Exception:  # noqa: BLE001 - a value jsonschema-rs cannot convert: TraceCore's walk decides
            valid = False
    with _schema_walk_answered(spec_check, valid):
        return _first_errors(spec_check.check_spec_compliance(artifact))


def _first_errors(report: dict) -> list[str]:
    return [str(error)[:500] for error in list(report["errors"])[:20]]


_schema_is_valid = None  # jsonschema-rs's compiled is_valid over TraceCore's artifact schema
_schema: dict | None = None  # TraceCore's artifact schema, as its _load_schema read it before any episode


def _load_spec_walk() -> None:
    """TraceCore's artifact schema, read once by its own ``_load_schema`` (where this
    TraceCore's checker is built the way :func:`_schema_walk_answered` expects; otherwise
    every artifact gets TraceCore's check as it ships), and compiled by jsonschema-rs where
    the episode interpreter has it. Read before any episode: installed code, it is under the
    run's seal, and a change to it taints the run without reaching a verdict."""
    global _schema_is_valid, _schema
    try:
        from agent_bench.runner import spec_check
    except ImportError:
        return
    if not (callable(getattr(spec_check, "_load_schema", None)) and callable(getattr(spec_check, "_validate_jsonschema", None))):
        return
    schema = spec_check._load_schema()
    if not isinstance(schema, dict) or "$schema" not in schema:
        return
    _schema = schema
    try:
        import jsonschema  # noqa: F401 - without it TraceCore's check says so on every artifact: leave that to it
        import jsonschema_rs

        # the draft TraceCore's walk uses (jsonschema.Draft202012Validator), whatever the
        # schema's $schema says
        _schema_is_valid = jsonschema_rs.Draft202012Validator(schema).is_valid
    except Exception:  # noqa: BLE001 - not installed, or a schema it cannot compile: TraceCore's walk
        return


@contextlib.contextmanager
def _schema_walk_answered(spec_check, valid: bool):
    """TraceCore's check, for one call, with the schema it read before any episode (not read
    again from disk, where an episode may have changed it) and, when jsonschema-rs found the
    artifact ``valid``, its schema walk answered "no errors"; restored after. Only in the
    worker, which is single-threaded and forks no episode during the call."""
    load, walk = spec_check._load_schema, spec_check._validate_jsonschema
    spec_check._load_schema = lambda: _schema
    if valid:
        spec_check._validate_jsonschema = lambda result, schema: []
    try:
        yield
    finally:
        spec_check._load_schema, spec_check._validate_jsonschema = load, walk


def _place_artifact(artifact: object, run_id: object, job: dict) -> dict:
    """Check that the reported artifact is the reported run's, record it under the agent's
    name, spec-check it (``--strict-spec``), measure it, and write it into the run's
    ``.agent_bench/runs`` exactly as TraceCore's ``persist_run`` writes it (never over an
    existing file). Returns ``artifact`` (what the harness records) and ``spec_errors``, or
    ``artifact_error`` (why the episode's claim is unverified), or ``host_fault`` (the host
    kept the artifact out of the run: a full disk, a lost permission, a folder gone; no
    half-written artifact is left)."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        return {"artifact_error": f"the result names no valid run id ({str(run_id)[:80]!r})"}
    if not isinstance(artifact, dict):
        return {"artifact_error": f"no TraceCore artifact for run id {run_id!r}"}
    if artifact.get("run_id") != run_id:
        return {"artifact_error": f"the artifact reported for run id {run_id!r} is another run's"}
    label = job.get("agent_label")
    try:
        if label and label != job.get("agent"):
            _relabel(artifact, label)
        spec_errors = _spec_errors(artifact) if job.get("strict_spec") else None
        compact = json.dumps(artifact, ensure_ascii=False)  # the C encoder, once: written and measured
        data = persist_bytes_within(artifact, compact, ARTIFACT_CAP_BYTES)
        if data is None:
            return {
                "artifact_error": f"the artifact for run id {run_id!r} is more than {ARTIFACT_CAP_BYTES >> 20} MiB "
                "as TraceCore writes it (indented); not placed"
            }
        telemetry = _telemetry(artifact, compact)
    except (ValueError, TypeError, RecursionError):
        return {"artifact_error": f"the artifact for run id {run_id!r} is not plain JSON"}
    except Exception as exc:  # noqa: BLE001 - TraceCore's hash or spec check on what an episode sent
        return {"artifact_error": f"the artifact for run id {run_id!r} is not one TraceCore can read ({type(exc).__name__})"}
    runs_dir = job.get("runs_dir")
    if runs_dir:
        target = os.path.join(runs_dir, f"{run_id}.json")
        run_dir = os.path.dirname(os.path.dirname(runs_dir))
        name = f"{run_id}.json"
        try:
            try:
                folder = _run_folder(run_dir, (".agent_bench", "runs"))
            except FileNotFoundError:
                # Another episode deleted the folder (the evidence check reports it): put it
                # back, but never the run directory itself, so a run moved away stays gone.
                folder = _run_folder(run_dir, (".agent_bench", "runs"), make=True)
        except OSError as exc:
            return _placing_failed(exc)
        try:
            try:
                out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=folder)
            except FileExistsError:
                return {"artifact_error": f"the run already holds an artifact with run id {run_id!r}"}
            except OSError as exc:
                return _placing_failed(exc)
            global _placed
            _placed = target  # until the harness has the row: a worker that dies first takes it back
            try:
                _write_all(out, data)
            except OSError as exc:
                # Half an artifact is no evidence: taken back, so the episode, run again by
                # --resume (a host fault) or failed (anything else), leaves nothing behind.
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=folder)
                _forget_placed()
                return _placing_failed(exc)
            finally:
                os.close(out)
        finally:
            os.close(folder)
    return {
        "artifact": {
            "run_id": run_id,
            "success": artifact.get("success") is True,
            "failure_type": _short(artifact.get("failure_type")),
            "failure_reason": _short(artifact.get("failure_reason")),
            "file_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest() if runs_dir else None,
            **telemetry,
        },
        "spec_errors": spec_errors,
    }


_placed: str | None = None  # the artifact this worker placed for the episode it has not yet reported

# What the host, not the episode, did when an artifact cannot be placed in the run: the disk or
# the quota is full, the run's folders lost their write permission, became read-only or are
# gone (the output folder removed or renamed). Such an episode is left unrecorded (``Done``'s
# ``host_fault``): the harness stops the run, and ``--resume`` runs the episode again.
HOST_FAULTS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT})


def _placing_failed(exc: OSError) -> dict:
    """Why an artifact could not be placed: a fault of the host (``host_fault``: no row, the
    run stops) or of what stands in the run (``artifact_error``: the episode's row)."""
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return {"artifact_error": "cannot place the artifact in the run: a link or a file stands in a folder's place"}
    why = f"cannot place the artifact in the run: {exc.strerror or exc}"
    if exc.errno in HOST_FAULTS:
        return {"host_fault": why}
    return {"artifact_error": why}


@contextlib.contextmanager
def _sigterm_held():
    """SIGTERM blocked for the block: one that arrives meanwhile is handled when it ends."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def _forget_placed() -> None:
    global _placed
    _placed = None


def _take_back_placed() -> None:
    if _placed is not None:
        with contextlib.suppress(OSError):
            os.unlink(_placed)
    _forget_placed()


def remove_tree(path: str | os.PathLike) -> None:
    """``shutil.rmtree``, but a tree too deep for its recursion (an episode can build one)
    goes to ``rm -rf``, which walks it without recursing."""
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        import subprocess

        subprocess.run(["rm", "-rf", "--", os.fspath(path)], check=False, stdin=subprocess.DEVNULL, capture_output=True)


def _short(value: object) -> str | None:
    return None if value is None else str(value)[:500]


class _CappedLog:
    """Keeps the first ``cap`` bytes of an episode's stdout+stderr in a file (created only
    when there is output) and counts the rest, so a flood neither blocks nor fills disk."""

    def __init__(self, path: str | None, cap: int) -> None:
        self.path, self.cap, self.kept, self.total, self.fh = path, cap, 0, 0, None

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.path is None or self.kept >= self.cap:
            return
        if self.fh is None:
            try:
                self.fh = _create(self.path)
            except OSError:  # the run directory is gone or full: count, keep nothing
                self.path = None
                return
        piece = chunk[: self.cap - self.kept]
        try:
            self.fh.write(piece)
        except OSError:  # a full disk: stop keeping output, never stop the worker
            self.path, self.kept = None, self.cap
            return
        self.kept += len(piece)

    def close(self) -> None:
        if self.fh is None:
            return
        try:
            if self.total > self.kept and self.path is not None:
                self.fh.write(f"\n[tracecore-perf: output capped, {self.total - self.kept} more bytes dropped]\n".encode())
            self.fh.close()
        except OSError:
            pass


def _run_folder(run_dir: str, parts: tuple[str, ...], make: bool = False) -> int:
    """A descriptor of the folder ``run_dir/parts...``, reached without following a link at
    the run directory or anywhere below it (an episode may put one in any of their places,
    pointing outside the run); ``make``: create the missing ones below the run directory."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(run_dir, flags)
    try:
        for part in parts:
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            inner = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create(path: str):
    """A new file at ``path`` (``<run>/logs/<name>``), never through a link or into a FIFO an
    episode planted there or in a folder's place: O_EXCL, below the run directory reached link
    by link; if the name is taken, a fresh one beside it (``<name>.<random>``)."""
    logs = os.path.dirname(path)
    folder = _run_folder(os.path.dirname(logs), (os.path.basename(logs),))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        name = os.path.basename(path)
        while True:
            try:
                fd = os.open(name, flags, 0o644, dir_fd=folder)
                break
            except FileExistsError:
                name = f"{os.path.basename(path)}.{os.urandom(4).hex()}"
    finally:
        os.close(folder)
    return open(fd, "wb")  # noqa: SIM115 - the caller closes it


def _append(sink, chunk: bytes) -> None:
    if isinstance(sink, bytearray):
        if len(sink) < RESULT_CAP_BYTES:
            sink.extend(chunk)
    else:
        sink.write(chunk)


def fork_call(function, request: dict) -> dict:
    """``function(request)`` in a forked child, in ``request["cwd"]``, so the zygote stays
    exactly as it was. Answers like an episode: returncode, result, result_error."""
    result_r, result_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(result_r)
            os.chdir(request.get("cwd") or ".")
            _write_all(result_w, json.dumps(function(request), default=str).encode("utf-8"))
        except BaseException:  # noqa: BLE001 - report on stderr, never return into the zygote
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)
    os.close(result_w)
    # An agent's module runs here (the probe loads it): bounded, like everything else.
    deadline = time.monotonic() + float(request.get("deadline_s", 120))
    chunks: list[bytes] = []
    size = 0
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([result_r], [], [], remaining)[0]:
            timed_out = True
            break
        chunk = os.read(result_r, 65536)
        if not chunk:
            break
        size += len(chunk)
        if size <= 64 * 1024 * 1024:
            chunks.append(chunk)
    os.close(result_r)
    if timed_out:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    answer = {"event": "done", "returncode": os.waitstatus_to_exitcode(status), "result": None}
    if timed_out:
        answer["result_error"] = f"no answer within {request.get('deadline_s', 120)} s"
    elif chunks:
        try:
            answer["result"] = json.loads(b"".join(chunks))
        except ValueError as exc:
            answer["result_error"] = f"unreadable answer: {exc}"
    return answer


class Zygote(_Role):
    """The first process of a run's episode interpreter: it warms TraceCore once (forkserver)
    and forks one :class:`Worker` per worker slot when the harness asks, handing each the
    socket the harness sent along. Workers are born warm; the warm-up is paid once per run
    instead of once per slot."""

    def __init__(self, isolation: str, control) -> None:
        self.isolation = isolation
        self.control = control  # socket.socket: JSON lines, with file descriptors attached
        self.workers: set[int] = set()
        self.inbox = b""
        self.fds: list[int] = []

    def send(self, message: dict) -> None:
        self.control.sendall(json.dumps(message).encode("utf-8") + b"\n")

    def receive(self) -> tuple[dict, list[int]]:
        import socket

        while b"\n" not in self.inbox:
            ready = select.select([self.control], [], [], 1.0)[0]
            self.reap()
            if not ready:
                continue
            data, fds, _, _ = socket.recv_fds(self.control, 65536, 8)
            if not data:  # the harness is gone
                return {"cmd": "exit"}, []
            self.inbox += data
            self.fds += fds
        line, self.inbox = self.inbox.split(b"\n", 1)
        fds, self.fds = self.fds, []
        return json.loads(line), fds

    def reap(self) -> None:
        """Collect exited workers; kill anything else re-parented to us (a subreaper), so
        no stray process outlives the run."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            self.workers.discard(pid)
        # Killing one re-parents its own children to us: repeat until none is left.
        while strays := [kid for kid in _children() if kid not in self.workers]:
            for kid in strays:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(kid, signal.SIGKILL)
            for kid in strays:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(kid, 0)

    def become_worker(self, fork: WorkerFork, zygote_pid: int) -> Worker:
        """In the forked child: drop the zygote's socket, become the worker of one slot."""
        self.control.close()
        worker = Worker(self.isolation, fork.channel)
        # A process group of its own: an episode that stops or kills the zygote's group
        # reaches no other slot's worker.
        os.setpgid(0, 0)
        signal.signal(signal.SIGTERM, worker.on_terminate)
        # A worker dies with its zygote (SIGTERM: it takes its episode's tree with it), so it
        # is never re-parented to the harness, where its episode's "kill my grandparent"
        # would reach the harness. The harness runs again, alone, an episode lost this way.
        _die_with_parent(signal.SIGTERM, zygote_pid)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        return worker

    def adopt(self, pid: int, fork: WorkerFork) -> None:
        """In the zygote, once a worker is forked: its socket is its own now."""
        os.close(fork.channel)
        self.workers.add(pid)
        self.send({"event": "spawned", "pid": pid})

    def stop_workers(self, wait: bool) -> None:
        """SIGTERM (and SIGCONT, in case an episode stopped one) to every worker; with
        ``wait``, reap them, and SIGKILL whatever has not gone within a few seconds."""
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)
        if not wait:
            return
        deadline = time.monotonic() + 3
        while self.workers:
            for pid in list(self.workers):
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done = pid
                if done:
                    self.workers.discard(pid)
            if self.workers and time.monotonic() > deadline:
                for pid in self.workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            if self.workers:
                time.sleep(0.01)

    def on_terminate(self, signum, frame) -> None:  # noqa: ARG002 - signal handler signature
        self.stop_workers(wait=False)  # each worker kills its episode tree on SIGTERM
        os._exit(128 + signum)

    def next_fork(self) -> WorkerFork | None:
        """Answer commands until one needs a worker forked; None means exit."""
        self.greet_once()
        while True:
            command, fds = self.receive()
            kind = command.get("cmd")
            if kind == "spawn" and fds:
                for fd in fds[1:]:
                    os.close(fd)
                sys.stdout.flush()
                sys.stderr.flush()
                return WorkerFork(fds[0])
            for fd in fds:
                os.close(fd)
            if kind == "warm":
                if self.isolation == "forkserver":
                    warm(command.get("scenario", []))
                self.send({"event": "warmed"})
            elif kind == "rehearse":
                failures = rehearse(command)
                # agent code ran here: put back what the zygote relies on
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, self.on_terminate)
                self.send({"event": "rehearsed", "failures": failures})
            elif kind == "reap":  # receive() has just reaped: nothing of an episode's is left
                self.send({"event": "reaped"})
            elif kind in ("probe", "metrics"):
                self.send(fork_call(probe if kind == "probe" else metrics, command))
            elif kind == "log":
                # from now on our stdout/stderr (inherited by workers) go to the run's log; never
                # through a link or into a FIFO planted at its name (an earlier attempt's episode)
                flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK
                logs = os.path.dirname(command["path"])
                try:
                    folder = _run_folder(os.path.dirname(logs), (os.path.basename(logs),))  # no link below the run
                    try:
                        fd = os.open(os.path.basename(command["path"]), flags, 0o644, dir_fd=folder)
                    finally:
                        os.close(folder)
                except OSError:
                    fd = os.open(os.devnull, os.O_WRONLY)
                os.set_blocking(fd, True)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                os.close(fd)
                self.send({"event": "logging"})
            elif kind == "exit":
                self.stop_workers(wait=True)
                self.bye()
                return None


def serve(argv: list[str]) -> dict:
    """The life of a process of the episode interpreter, from its command line. Returns only
    in an episode process, with its job (the Run command), for episode_process.py to run it;
    every other role ends in here.

    ``[script, "zygote", isolation, harness_pid]`` (stdin: a Unix socket to the harness):
    the zygote, which forks workers, which fork episode processes, in the loop below; a
    forked process carries on from where it was forked. ``[script, "episode", job,
    result_fd]``: a spawned episode interpreter, exec'd by a worker. ``[script,
    "check-agent", job]``: the check of one agent file (:func:`check_agent`), started by the
    harness, not by the zygote."""
    if argv[1] == "episode":
        return json.loads(argv[2])
    if argv[1] == "check-agent":
        check_agent(json.loads(argv[2]))
    role: Zygote | Worker = start(argv)
    zygote = role
    while (fork := role.next_fork()) is not None:
        parent_pid = os.getpid()
        pid = os.fork()
        if pid:  # the role that asked goes on
            if isinstance(fork, WorkerFork):
                zygote.adopt(pid, fork)
            else:
                role.supervise(pid, fork)
            continue
        try:
            if isinstance(fork, WorkerFork):
                role = zygote.become_worker(fork, parent_pid)
                continue
            role.become_episode(fork, parent_pid)
            _as_tracecore_runs()
            if zygote.isolation == "spawn":
                script = os.path.abspath(argv[0])
                os.execv(sys.executable, [sys.executable, script, "episode", json.dumps(fork.job), str(RESULT_FD)])
            return fork.job  # the episode process: episode_process.py runs it
        except BaseException:  # noqa: BLE001 - nothing may escape a forked child
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
            os._exit(EXIT_CHILD_SETUP_FAILED)
    # Told to exit: skip the interpreter's teardown (tens of ms of freeing TraceCore's
    # modules, which the harness would wait for).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def start(argv: list[str]) -> Zygote:
    """Set up the zygote (argv = [.., "zygote", isolation, harness_pid]; stdin is a Unix
    socket to the harness) and return it for :func:`serve`'s fork loop."""
    global _callgrind_dir, _counted_rate
    isolation, harness_pid = argv[2], int(argv[3])
    _callgrind_dir = os.environ.pop(CALLGRIND_DIR_ENV, None)  # episodes need not see it
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the harness decides what Ctrl-C means
    if isolation == "forkserver":
        # TraceCore's imports first, so what the harness imports for itself after them is
        # known as the harness's (_harness_imports); the harness is importing meanwhile.
        warm_runtime()
    with _harness_imports():
        import socket

        control = socket.socket(fileno=os.dup(0))
        zygote = Zygote(isolation, control)
        signal.signal(signal.SIGTERM, zygote.on_terminate)
        _die_with_parent(signal.SIGTERM, harness_pid)  # checks that the harness still lives
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        warm_verdict()
        if _callgrind_dir is not None:
            with contextlib.suppress(OSError):  # the probe reports a host that refuses the filter
                _sandbox().prepare_single_process()
            _counted_rate = _calibrate()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return zygote
