"""The layout of ``results.json`` (keys and kinds of values, not the numbers), as the quickstart wrote it before
its results became dataclasses: tools reading the file must keep working."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LAYOUT_FILE = Path(__file__).with_name("results_layout.json")


def layout(o: Any) -> Any:
    """Keys of every dict, the layout of a list's first element when it holds dicts or lists, else the kind of value."""
    if isinstance(o, dict):
        return {k: layout(v) for k, v in o.items()}
    if isinstance(o, list):
        return [layout(o[0])] if o and isinstance(o[0], (dict, list)) else "list"
    return "null" if o is None else "bool" if isinstance(o, bool) else "number" if isinstance(o, (int, float)) else "str"


def results_layout(results: dict[str, Any]) -> dict[str, Any]:
    """:func:`layout` of a CI-sized run's ``results.json``; the training configs (``config``, ``models.*.config``)
    are the library's schema and ``machine`` is ``deploy.benchmark.environment()``: marked, not spelled out."""
    out = layout(results)
    out["config"], out["machine"] = "training config + quickstart section", sorted(results["machine"])
    for model in out["models"].values():
        model["config"] = "training config"
    return out


if __name__ == "__main__":  # python tests/quickstart/results_layout.py OUT/results.json: record the layout
    import sys

    LAYOUT_FILE.write_text(json.dumps(results_layout(json.loads(Path(sys.argv[1]).read_text())), indent=1) + "\n")
