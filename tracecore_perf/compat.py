"""What differs between the Pythons the tool runs on (3.10 to 3.13), in one place. Import it
where it is needed (a TOML reader costs start-up time a run without TOML need not pay)."""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the parser tomllib was made from
    import tomli as tomllib

__all__ = ["tomllib"]
