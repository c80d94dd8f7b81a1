"""Fixture: raises an error made of output injections, one for every sink the error reaches
(its row, the failure reasons, check and compare in every format, the console table, JUnit
XML, the charts): GitHub workflow commands (a line of their own, the legacy ``##[`` form),
markdown and HTML (an image, a link, a bare URL, a mention, an issue reference, a
``<details>``), rich markup (a link, concealed text, a closing tag that opens nothing),
terminal escapes (an OSC 8 hyperlink, a cleared screen, a backspace, a carriage return) and
characters XML 1.0 does not allow (U+FFFE, U+FFFF, a C0 control).

``tests/test_output_injection.py`` also runs it from a file whose path spells the same."""

from agent_bench.agents.toy_agent import ToyAgent

PAYLOAD = (
    "\n::error file=x::forged\n::stop-commands::tok\n##[error]legacy"
    " <img src=x onerror=alert(1)> ![i](https://evil.example/i.png) [click](https://evil.example)"
    " https://evil.example www.evil.example @octocat #1 <details><summary>s</summary>"
    " [link=https://evil]x[/link] [conceal]hid[/conceal] [/oops]"
    " \x1b]8;;https://evil\x07osc\x1b]8;;\x07 \x1b[2J\x08\r"
    " \ufffe\uffff\x01 end"
)


class Agent(ToyAgent):  # TraceCore's toy agent for reset/observe; act() misbehaves
    def act(self):
        raise RuntimeError("injected" + PAYLOAD)
