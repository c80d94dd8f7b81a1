"""Fixture: TraceCore's toy agent that, from inside its episode, talks to Valgrind the way a C
extension built with callgrind.h would: client requests, issued through a few bytes of machine
code it maps executable with ctypes (x86_64). Which request, and when, is read from the name it
is copied under:

- ``zero_stats_*``: CALLGRIND_ZERO_STATS before its final answer (what came before is gone);
- ``toggle_collect_*``: CALLGRIND_TOGGLE_COLLECT at its first action (nothing after counts);
- ``dump_stats_*``: CALLGRIND_DUMP_STATS at every action (each dump zeroes the count);
- ``stop_instrumentation_*``: CALLGRIND_STOP_INSTRUMENTATION at its first action.

Outside Valgrind a client request is a no-op: the agent is the toy agent."""

import ctypes
import mmap
import os

from agent_bench.agents.toy_agent import ToyAgent

# rax = &args, rdx = default; the magic preamble (rol rdi 3, 13, 61, 51) and xchg rbx, rbx; return rdx
_CODE = bytes.fromhex("4889f84889f248c1c70348c1c70d48c1c73d48c1c7334887db4889d0c3")
_BASE = (ord("C") << 24) | (ord("T") << 16)
REQUESTS = {"dump_stats": _BASE, "zero_stats": _BASE + 1, "toggle_collect": _BASE + 2, "stop_instrumentation": _BASE + 5}
MODE = next((mode for mode in REQUESTS if os.path.basename(__file__).startswith(mode)), None)
_page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
_page.write(_CODE)
_call = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(_page)))


def client_request(code: int) -> int:
    args = (ctypes.c_uint64 * 6)(code, 0, 0, 0, 0, 0)
    return _call(ctypes.addressof(args), 0)


class Agent(ToyAgent):
    acted = False

    def act(self):
        action = super().act()
        first, self.acted = not self.acted, True
        when = {
            "dump_stats": True,  # every action
            "toggle_collect": first,
            "stop_instrumentation": first,
            "zero_stats": action.get("type") == "set_output",  # the final answer
        }
        if MODE and when[MODE]:
            client_request(REQUESTS[MODE])
        return action
