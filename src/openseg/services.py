"""The service container: settings, metadata store and worker, wired once by ``bootstrap``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from openseg.config import Settings
from openseg.store.db import Database

if TYPE_CHECKING:
    from openseg.worker.runner import Worker

BatchHook = Callable[["Services", str], None]


@dataclass
class Services:
    settings: Settings
    db: Database
    after_batch: list[BatchHook] = field(default_factory=list)
    worker: Worker | None = None
