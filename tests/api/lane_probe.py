"""Work for a lane's process that imports nothing of its own (``test_lane_processes``)."""

from __future__ import annotations

import sys
from typing import Any


def imported(services: Any, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` the process has imported."""
    return [module for module in modules if module in sys.modules]


def frozen(services: Any) -> int:
    """How many objects the process has left out of garbage collections (``gc.freeze``)."""
    import gc

    return gc.get_freeze_count()


def slow(services: Any, seconds: float, tag: Any) -> tuple[Any, int]:
    """``tag`` and the process's id, after ``seconds``."""
    import os
    import time

    time.sleep(seconds)
    return tag, os.getpid()


def unpicklable(services: Any) -> Any:
    """An answer that cannot be sent back to the server."""
    return lambda: None
