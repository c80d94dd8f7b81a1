"""What the zygote and a worker share: a role greets the harness once, then takes commands."""

from __future__ import annotations

import os
import resource

from .constants import PROTOCOL_VERSION


class Role:
    """What the zygote and a worker share: they greet the harness once, then take commands."""

    greeted = False

    def send(self, message: dict) -> None:
        raise NotImplementedError

    def greet_once(self) -> None:
        if not self.greeted:
            self.send({"event": "ready", "pid": os.getpid(), "protocol": PROTOCOL_VERSION})
            self.greeted = True

    def bye(self) -> None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        self.send({"event": "bye", "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime, "minor_faults": usage.ru_minflt})
