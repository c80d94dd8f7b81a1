"""Fixture: the moment its module is imported (the harness loading it to check it), finds out
what it can reach, and fails to load with a report of it, one JSON object in its error:

- ``sockets``: descriptors it holds that are sockets (a zygote's control socket would be one);
- ``fds``: every descriptor it holds;
- ``wrote``: whether it could create HOSTILE_OUTSIDE (a path outside its scratch directory);
- ``read``: what it read of HOSTILE_SECRET;
- ``sees_pid``: whether HOSTILE_WATCH_PID (a process of the test's) is in its /proc;
- ``tcp``: whether it reached 127.0.0.1:HOSTILE_PORT; ``abstract``: the abstract socket
  HOSTILE_ABSTRACT."""

import json
import os
import socket
import stat

report = {}
fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
report["fds"] = fds
held = []
for fd in fds:
    try:
        if stat.S_ISSOCK(os.fstat(fd).st_mode):
            held.append(fd)
    except OSError:
        pass
report["sockets"] = held
outside = os.environ.get("HOSTILE_OUTSIDE")
try:
    with open(outside, "w") as fh:
        fh.write("escaped")
    report["wrote"] = True
except OSError:
    report["wrote"] = False
try:
    with open(os.environ.get("HOSTILE_SECRET", "/nonexistent")) as fh:
        report["read"] = fh.read()
except OSError:
    report["read"] = None
report["sees_pid"] = os.path.exists(f"/proc/{os.environ.get('HOSTILE_WATCH_PID', '0')}")
try:
    with socket.create_connection(("127.0.0.1", int(os.environ.get("HOSTILE_PORT", "1"))), timeout=2):
        report["tcp"] = True
except OSError:
    report["tcp"] = False
try:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        sock.connect("\0" + os.environ.get("HOSTILE_ABSTRACT", "none"))
        report["abstract"] = True
except OSError:
    report["abstract"] = False

raise RuntimeError("reach " + json.dumps(report, sort_keys=True))
