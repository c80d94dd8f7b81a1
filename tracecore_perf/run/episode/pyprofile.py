"""The Python-level profile of one episode (``explain``'s Python names): every bytecode the
episode's Python functions execute, counted per call stack by a ``sys.settrace`` tracer
(``opcode`` events), written as folded stacks (``frame;frame;frame count``, the format
flame graph tools and speedscope read).

Why bytecodes, counted this way: callgrind counts the interpreter's C functions; which
Python function was running is not in its profile. A tracer's count of the bytecodes each
Python function executes is deterministic (the same episode, seed and hash seed execute the
same bytecodes), reads the same on every CPython this package runs on (3.11's tracing API is
3.13's), and gives a function's own work apart from its callees'. It runs in a replay of
the episode, natively, never in the counted one: tracing multiplies its CPU ~10x
(scripts/trace_cost.py).

Standard library only, like the rest of the episode side."""

from __future__ import annotations

import contextlib
import os
import sys

PYTHON_PROFILE = "python-profile.folded"  # in the episode's scratch folder, where the worker reads it
_SEP = ";"
MAX_FRAMES = 128  # frames kept of a deeper stack (mutual recursion): the file stays linear in the work


class BytecodeTracer:
    """Counts bytecodes per call stack. Stacks are kept as a tree of nodes, one per distinct
    (parent node, code object), so each ``opcode`` event is one list increment."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, object], int] = {}
        self.parents: list[int] = [-1]
        self.codes: list[object] = [None]
        self.counts: list[int] = [0]
        self.stack: list[int] = [0]

    def trace(self, frame, event, arg):  # noqa: ARG002 - sys.settrace's signature
        if event == "opcode":
            self.counts[self.stack[-1]] += 1
        elif event == "call":
            if self.codes[self.stack[-1]] is frame.f_code:  # a function calling itself: one frame, so
                self.stack.append(self.stack[-1])  # deep recursion adds no stacks (nor a line per level)
                frame.f_trace_lines = False
                frame.f_trace_opcodes = True
                return self.trace
            key = (self.stack[-1], frame.f_code)
            node = self.nodes.get(key)
            if node is None:
                node = self.nodes[key] = len(self.counts)
                self.parents.append(key[0])
                self.codes.append(frame.f_code)
                self.counts.append(0)
            self.stack.append(node)
            frame.f_trace_lines = False
            frame.f_trace_opcodes = True
        elif event == "return" and len(self.stack) > 1:  # a generator's yield returns too; it calls again
            self.stack.pop()
        return self.trace

    def start(self) -> None:
        sys.settrace(self.trace)

    def stop_and_write(self) -> None:
        """Tracing off, and the folded stacks into the episode's working folder (its scratch,
        where its worker reads them once it has ended). A method, not a function of this
        module: the episode process has taken the episode side's modules out of ``sys.modules``
        by then, so nothing of it is imported at the end."""
        sys.settrace(None)
        with contextlib.suppress(FileNotFoundError):  # whatever stands at the name (a FIFO, a link, planted
            os.unlink(PYTHON_PROFILE)  # by the agent) is not written into
        fd = os.open(PYTHON_PROFILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as out:
            out.write("\n".join(self.folded()) + "\n")

    def folded(self) -> list[str]:
        """One ``stack count`` line per stack that executed bytecodes of its own."""
        names: dict[object, str] = {}
        lines = []
        for node, count in enumerate(self.counts):
            if not count or node == 0:
                continue
            frames = []
            at = node
            while at > 0:
                code = self.codes[at]
                if code not in names:
                    names[code] = frame_name(code)
                frames.append(names[code])
                at = self.parents[at]
            frames.reverse()
            if len(frames) > MAX_FRAMES:  # the outermost and the innermost frames, the middle counted
                half = MAX_FRAMES // 2
                frames = [*frames[:half], f"[{len(frames) - 2 * half + 1} frames]", *frames[-half + 1 :]]
            lines.append(f"{_SEP.join(frames)} {count}")
        return lines


def frame_name(code) -> str:
    """``qualname (file:line)``, the file as it reads on any host: below ``site-packages`` or
    the standard library's folder, or the file's name alone (an agent file outside both). An
    agent names its own code: a character that would end a frame (``;``) or a line of the
    format, or that a terminal or an XML document would not take as text, is shown escaped."""
    name = f"{getattr(code, 'co_qualname', code.co_name)} ({short_path(code.co_filename)}:{code.co_firstlineno})"
    return "".join(c if c.isprintable() and c != _SEP else f"\\x{ord(c):02x}" for c in name)


def short_path(path: str) -> str:
    for marker in ("site-packages" + os.sep, "dist-packages" + os.sep):
        if marker in path:
            return path.rsplit(marker, 1)[1]
    stdlib = os.path.dirname(os.__file__) + os.sep
    if path.startswith(stdlib):
        return "stdlib/" + path[len(stdlib) :]
    return os.path.basename(path) if os.sep in path else path
