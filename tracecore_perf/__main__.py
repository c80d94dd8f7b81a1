import atexit
import os
import sys

# `python -m` puts the working directory first on sys.path. Episodes run as the same user and
# can drop a module there that the harness would import later (matplotlib, numpy and scipy
# import modules lazily, after the run, for --report): nothing is imported from it.
sys.path[:] = [entry for entry in sys.path if entry not in ("", os.getcwd())]

from tracecore_perf.cli import main  # noqa: E402 - after the working directory left sys.path

code = main()
# Everything the command writes is written and closed by now. What is left is the
# interpreter's teardown, freeing every object of every imported module, which costs a
# noticeable share of the everyday slice for nothing (measured: docs/profile.md, "Small
# costs measured in the code"). Run the exit handlers (logging's flush among them), flush
# the console, and leave.
atexit._run_exitfuncs()
for stream in (sys.stdout, sys.stderr):
    try:
        if stream is not None:  # None: started with that descriptor closed
            stream.flush()
    except BrokenPipeError:  # whoever read it has gone, as in cli.main
        code = code or 141
    except (OSError, ValueError):  # a full disk, a closed file
        code = code or 1
os._exit(code)
