"""Fixture: TraceCore's toy agent which, in the FAULT_AT-th episode of a run (counted in the
test's FIXTURE_CLOCK folder), does to the run's folders what the host might do mid-run, once
per test (FAULT_DONE, a marker file: the resumed run goes clean), as FAULT says:

- ``rename``: the output folder FAULT_OUT renamed to FAULT_OUT + "-moved";
- ``remove``: the output folder removed (the run's series unlinked first, as ``rm -rf`` goes
  files before folders; then the folder renamed away, so it vanishes in one step, and removed);
- ``readonly``: the run's ``.agent_bench/runs`` made read-only by a bind mount (root, in the
  test's private mount namespace), as a lost write permission.

Its own artifact then cannot be placed either: the episode is left unrecorded, as every
episode the host keeps from being recorded."""

import glob
import os
import runpy
import shutil
import subprocess
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

episodes_before = runpy.run_path(str(Path(__file__).resolve().with_name("hostile_tools.py")))["episodes_before"]


def _fault() -> None:
    if episodes_before() != int(os.environ["FAULT_AT"]):
        return
    try:
        os.close(os.open(os.environ["FAULT_DONE"], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return  # done before: the resumed run runs clean
    out, fault = os.environ["FAULT_OUT"], os.environ["FAULT"]
    if fault == "rename":
        os.rename(out, out + "-moved")
    elif fault == "remove":
        # As rm -rf does, files go before their folder: the run's series first (the harness's
        # open series then reads "deleted", whatever it notices next), then the folder, moved
        # away in one step and removed. Were the folder moved first, a harness that stops the
        # run (killing this episode) before the rest is gone would rightly find it moved.
        for series in glob.glob(os.path.join(glob.escape(out), "run-*", "series.jsonl")):
            os.unlink(series)
        os.rename(out, out + "-removing")
        shutil.rmtree(out + "-removing", ignore_errors=True)
    elif fault == "readonly":
        (runs,) = glob.glob(os.path.join(glob.escape(out), "run-*", ".agent_bench", "runs"))
        subprocess.run(["mount", "--bind", runs, runs], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", runs], check=True)


class Agent(ToyAgent):
    started = False

    def act(self):
        if not self.started:
            self.started = True
            _fault()
        return super().act()
