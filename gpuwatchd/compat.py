"""What Python 3.10 lacks and the rest of gpuwatchd uses (Ubuntu 22.04 ships 3.10).

:class:`StrEnum` is :class:`enum.StrEnum` on 3.11 and later, and on 3.10 a ``(str, Enum)``
with the same ``str()`` and ``format()``: the member's value (a plain ``(str, Enum)`` prints
``Mode.CONTROL`` on 3.10 and, from 3.12, in f-strings too). Import it from here, never from
:mod:`enum`.
"""

from __future__ import annotations

import sys
from enum import Enum

__all__ = ["StrEnum"]

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:

    class StrEnum(str, Enum):
        """A str whose members print as their values (enum.StrEnum of Python 3.11)."""

        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, format_spec: str) -> str:
            return str.__format__(str.__str__(self), format_spec)

        @staticmethod
        def _generate_next_value_(
            name: str, start: int, count: int, last_values: list[object]
        ) -> str:
            return name.lower()
