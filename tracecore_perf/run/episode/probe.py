"""What the harness asks of the episode interpreter before a run, each answered in a forked
child of the zygote (``zygote.fork_call``) or, for one agent file, a process of its own: the
probe (agent files and task refs resolved, the interpreter and the installed code the run
seals named, its environment recorded), ``check_agent`` (one agent file loaded as an episode
will load it) and TraceCore's metrics over a finished run."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys

from .constants import EXIT_CHILD_SETUP_FAILED
from .spec import OPTIONAL_TRACECORE, has_module
from .state import forbid_new_processes, load_sandbox
from .system import write_all

TYPE_CHECKING = False  # typing itself is an import the zygote need not pay for
if TYPE_CHECKING:
    from typing import NoReturn


def probe(request: dict) -> dict:
    """Resolve every agent file and task ref of the scenario, and name this interpreter and
    the installed code the run seals; no agent's code runs (``check_agent`` loads each file,
    in a process of its own, once the harness has sealed the code). ``light``: only whether
    episodes can be kept to one process (the zygote under Valgrind, its native twin probed)."""
    if request.get("light"):
        return {"single_process_error": load_sandbox().probe_single_process() if request.get("single_process") else None}
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
        "sandbox_error": load_sandbox().probe() if request.get("sandbox") else None,
        "single_process_error": load_sandbox().probe_single_process() if request.get("single_process") else None,
        "executable": sys.executable,
        "tracecore_dir": tracecore_dir,
        "tracecore_packages": tracecore_packages,
        "loaded_packages": loaded_packages,
        "site_dirs": _site_dirs(),
        "python_version": sys.version.split()[0],
        "python_build": " ".join(sys.version.split()),
        "tracecore_version": version,
        "environment": environment(),
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
            load_sandbox().enter(job["scratch"], job["scratch_root"], job.get("hidden") or [])
        if job.get("single_process"):
            forbid_new_processes()
        verdict = {"problem": _agent_class_problem(job["path"])}
        write_all(answer, json.dumps(verdict).encode("utf-8"))
    except BaseException:  # noqa: BLE001 - no answer is a refusal; nothing else to say
        code = EXIT_CHILD_SETUP_FAILED
    os._exit(code)


def _tracecore_lacks() -> dict[str, str]:
    """Each optional part this TraceCore lacks (or cannot use), and why."""
    lacks = {
        name: f"{module} arrived in TraceCore 1.0.0" for name, module in OPTIONAL_TRACECORE.items() if not has_module(module)
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
    here = os.path.dirname(os.path.realpath(__file__))
    not_installed |= {here, os.path.dirname(here)}  # this package, and the folder episode_process.py is in
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


def environment() -> dict:
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
