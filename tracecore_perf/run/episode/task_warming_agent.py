"""The harness's own agent for warming a task that only a user's own agent files run.

The warm-up runs agent code inside the zygote, so it never runs a user's own agent file there
(harness._warmup_rows). A task that only such files run would then be loaded by every one of
their episodes (its setup, actions and validator modules, the runner's paths for it). The
zygote warms such a task with TraceCore's shipped agent for it (warmup.task_agent); this agent
stands in where TraceCore names none. It is the harness's code, not the user's: TraceCore loads
it and sets the task up as for any episode, and its first action, which no task has, ends the
episode there (``invalid_action``), so at least the task's modules are loaded in the zygote.
"""


class Agent:
    def reset(self, task_spec):
        self.task_spec = task_spec

    def observe(self, observation):
        self.observation = observation

    def act(self):
        return {"type": "tracecore_perf_warm_up", "args": {}}
