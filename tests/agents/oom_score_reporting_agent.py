"""Fixture: reports its own OOM score adjustment (what the kernel's OOM killer weighs) and its
data-segment limit in the error it raises."""

import resource

from agent_bench.agents.toy_agent import ToyAgent


class Agent(ToyAgent):
    def act(self):
        with open("/proc/self/oom_score_adj") as fh:
            adj = fh.read().strip()
        limit = resource.getrlimit(resource.RLIMIT_DATA)[0]
        raise RuntimeError(f"oom_score_adj={adj} data_limit={limit}")
