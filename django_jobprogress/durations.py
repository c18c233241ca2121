"""Lengths of time as people write them: ``30m``, ``12h``, ``7d``, ``2w`` or seconds.

Shared by ``manage.py prune_jobs --older-than`` and the ``every`` of a schedule.
"""

from __future__ import annotations

import math
import re
from typing import Any

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
EXAMPLES = "30s, 10m, 12h, 7d, 2w or a number of seconds"


def parse_duration(value: Any) -> float:
    """Seconds in ``value`` (a number, or text such as ``10m``); ValueError if it is
    not a finite, non-negative length of time."""
    if isinstance(value, bool):
        raise ValueError(f"not a length of time: {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION.fullmatch(value.strip())
        if found is None:
            raise ValueError(f"not a length of time ({EXAMPLES}): {value!r}")
        number, unit = found.groups()
        seconds = float(number) * UNITS[unit or "s"]
    else:
        raise ValueError(f"not a length of time ({EXAMPLES}): {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a finite, non-negative length of time: {value!r}")
    return seconds
