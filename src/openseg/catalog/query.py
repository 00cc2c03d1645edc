"""The old name of :mod:`openseg.catalog.read_only_sql`."""

from openseg.catalog.read_only_sql import json_value  # re-exported until profiles/entities.py moves over

__all__ = ["json_value"]
