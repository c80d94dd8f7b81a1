"""Fixture: raises with an error message that is HTML, so the report must show it as text."""


class Agent:
    def reset(self, task_spec):
        pass

    def observe(self, observation):
        pass

    def act(self):
        raise RuntimeError("<script>window.__pwned=1</script> & <b>bold</b> costs $5 and $x^2$")
