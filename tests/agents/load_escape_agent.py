"""Fixture: fails to load with an error that forges a console line: a newline, then terminal
escapes that clear the line, move up and print a green OK."""

raise RuntimeError("nope\ntracecore-perf run complete: 0 failed\x1b[2K\x1b[1A\x1b[32m OK\x1b[0m")
