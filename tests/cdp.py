"""A minimal headless-Chromium driver for the report tests, over the DevTools protocol.

Chromium's ``--remote-debugging-pipe`` speaks the protocol on file descriptors 3 (it reads)
and 4 (it writes), NUL-terminated JSON messages: no port to discover, no websocket client, no
waiting for a listener to come up. Every read is watched by conftest's watchdog, so a wedged
browser (no message, no CPU time in its process tree for QUIET_S) fails the test instead of
hanging it, and a slow one on a loaded host only makes it slower; nothing here waits on a
clock to synchronise.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from conftest import Watchdog

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor number of at least 10 (close-on-exec, as os.pipe's)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class BrowserError(Exception):
    pass


class Chromium:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, executable: str, profile: Path) -> None:
        to_browser_r, self._to_browser = (_above_4(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (_above_4(fd) for fd in os.pipe())
        # The shell puts our pipe ends on fds 3 and 4, where --remote-debugging-pipe expects them;
        # they start above 4 so neither redirection overwrites the other's source.
        # bash, not sh: dash takes only one-digit descriptors in a redirection.
        command = f'exec "$0" "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        self.proc = subprocess.Popen(
            ["bash", "-c", command, executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(to_browser_r, from_browser_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so cleanup reaches its helpers too
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    # --- protocol ----------------------------------------------------------------------

    def _read_message(self) -> dict[str, Any]:
        dog = Watchdog(self.proc.pid)
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._from_browser], [], [], 1.0)
            if not ready:
                if dog.stalled():
                    raise BrowserError(f"chromium said nothing and used no CPU time for {dog.quiet_limit:g} s")
                continue
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium closed the protocol pipe (exit {self.proc.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict[str, Any] | None = None, session: bool = True) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                self.events.remove(event)
                return event
        while True:
            event = self._read_message()
            if event.get("method") == method:
                return event
            self.events.append(event)

    # --- page --------------------------------------------------------------------------

    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True}, session=False)["sessionId"]
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.send(domain)
        self.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def image_sizes(self) -> list[list[int]]:
        """Every <img>'s natural size once decoded; [0, 0] for one that does not decode."""
        return self.evaluate(
            "Promise.all([...document.images].map(img => img.decode().then("
            "() => [img.naturalWidth, img.naturalHeight], () => [0, 0])))"
        )

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations among them)."""
        errors = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                errors.append("exception: " + json.dumps(params.get("exceptionDetails", {}))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append("log: " + params["entry"].get("text", ""))
        return errors

    # --- lifetime ----------------------------------------------------------------------

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", session=False)
        except (BrowserError, OSError):
            pass
        dog = Watchdog(self.proc.pid)
        while True:
            try:
                self.proc.wait(timeout=1.0)
                break
            except subprocess.TimeoutExpired:
                if dog.stalled():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
                    break
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
