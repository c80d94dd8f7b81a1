"""Fixture: writes a ~3.5 MB success-shaped result to every file descriptor >= 3,
then exits 0 at once. Its padding is a string of characters that need escaping when the
JSON is encoded again: NULs (already escaped here, 6 bytes each) and mostly non-ASCII text
written raw (2 bytes each here, 6 bytes each once re-encoded ASCII-safe), so a relay that
decodes and re-encodes it sees ~10 MB. Too large a result is a bad result, never a success."""

import json
import os
import runpy
from pathlib import Path

from agent_bench.agents.toy_agent import ToyAgent

TARGET_BYTES = 3_500_000
CHUNK = "\u0000" + "\u00e9" * 63  # 132 bytes as written here, 384 once escaped to ASCII

write_everywhere = runpy.run_path(Path(__file__).resolve().with_name("hostile_tools.py"))["write_everywhere"]


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        padding = CHUNK * (TARGET_BYTES // 132)
        payload = {"completed": True, "episode_s": 0.01, "success": True, "run_id": "forged", "failure_reason": padding}
        write_everywhere(json.dumps(payload, ensure_ascii=False).encode("utf-8"))
        os._exit(0)
