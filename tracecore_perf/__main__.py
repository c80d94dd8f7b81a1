import atexit
import os
import sys

from tracecore_perf.cli import main

code = main()
# Everything the command writes is written and closed by now. What is left is the
# interpreter's teardown, freeing every object of every imported module: ~30 ms on the
# benchmark host, a twentieth of the everyday slice, for nothing. Run the exit handlers
# (logging's flush among them), flush the console, and leave.
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
