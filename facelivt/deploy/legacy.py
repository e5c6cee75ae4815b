"""Dict-style reading of the typed results, kept for one release (layer 0 of :mod:`facelivt.deploy`).

Deprecated: results of :mod:`facelivt.deploy` used to be dicts with agreed keys (``q["int8_ms"]``,
``row["ort_b32_ms"]``); they are dataclasses now, read by attribute (``q.int8_ms``,
``row.latency[Column("ort", 32)].ms``). ``result[key]``, ``key in result`` and ``result.get(key)`` still
answer with the keys of the old dicts (their JSON form) until the next release.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any


class KeyAccess:
    """Mixin for a dataclass: ``obj[key]`` / ``key in obj`` / ``obj.get(key)`` over :meth:`legacy_keys`."""

    def legacy_keys(self) -> dict[str, Any]:
        """The old dict's keys and values; by default the dataclass's fields (values as they are)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __getitem__(self, key: str) -> Any:
        return self.legacy_keys()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.legacy_keys()

    def get(self, key: str, default: Any = None) -> Any:
        return self.legacy_keys().get(key, default)

    def keys(self):
        return self.legacy_keys().keys()
