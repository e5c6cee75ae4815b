"""The benchmark's results as data (layer 3 of :mod:`facelivt.deploy`, below :mod:`~facelivt.deploy.benchmark`):
typed table rows, the goals and :class:`BenchResult` with its JSON form.

A row has its identity (Table III: ``form``/``label``; Table IV: ``heads``; peers: ``model``), its
size (``params_m``, ``macs_m``) and one :class:`LatencyCell` per measured :class:`Column` (a runtime
at a batch size), in measurement order. ``bench.json`` has a flat layout
(``"ort_b32_ms"``, ``"ort_b32_ratio"``, ...): :meth:`BenchRow.to_dict` writes it and
:func:`row_from_dict` reads it back.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Mapping

REFERENCE = "facelivt_s"
RUNTIME_LABELS = {"eager": "PyTorch eager", "opt": "PyTorch optimize_for_inference", "ort": "ONNX Runtime"}
RUNTIMES = tuple(RUNTIME_LABELS)  # the order of a row's columns
# the flat JSON keys of a cell: "<runtime>_b<batch>" + suffix
_CELL_SUFFIXES = ("_p10_p90_ms", "_ratio", "_img_s", "_ms")


@dataclass(frozen=True)
class Column:
    """One latency column: a runtime (``eager``, ``opt``, ``ort``) at a batch size."""

    runtime: str
    batch: int

    @property
    def key(self) -> str:
        """``"ort_b32"``: the prefix of the column's keys in ``bench.json``."""
        return f"{self.runtime}_b{self.batch}"

    @property
    def label(self) -> str:
        """``"ONNX Runtime, batch 32"``."""
        return f"{RUNTIME_LABELS[self.runtime]}, batch {self.batch}"

    @classmethod
    def parse(cls, key: str) -> "Column":
        runtime, batch = key.split("_b")
        return cls(runtime, int(batch))


@dataclass
class LatencyCell:
    """One model's latency in one column: median and spread (ms), against the table's reference, images/s."""

    ms: float
    p10_ms: float | None = None
    p90_ms: float | None = None
    ratio: float | None = None  # ms / the reference row's ms in this column
    img_s: float | None = None  # batch / latency

    def to_dict(self, key: str) -> dict[str, Any]:
        out: dict[str, Any] = {f"{key}_ms": self.ms}
        if self.p10_ms is not None:
            out[f"{key}_p10_p90_ms"] = [self.p10_ms, self.p90_ms]
        if self.ratio is not None:
            out[f"{key}_ratio"] = self.ratio
        if self.img_s is not None:
            out[f"{key}_img_s"] = self.img_s
        return out


@dataclass(kw_only=True)
class BenchRow:
    """A table row; the subclasses add the identity fields. A latency is ``row.latency[Column("ort", 32)].ms``
    (or ``row.ms(Column("ort", 32))``); the flat keys (``"ort_b32_ms"``) are only ``bench.json``'s."""

    params_m: float | None = None
    macs_m: float | None = None
    latency: dict[Column, LatencyCell] = field(default_factory=dict)

    IDENTITY: ClassVar[tuple[str, ...]] = ()

    def identity(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.IDENTITY if getattr(self, k) is not None}

    def ms(self, column: Column) -> float:
        return self.latency[column].ms

    def to_dict(self) -> dict[str, Any]:
        """The flat dict of ``bench.json``: identity, sizes, then each column's keys."""
        out = self.identity()
        out.update({k: getattr(self, k) for k in ("params_m", "macs_m") if getattr(self, k) is not None})
        for col, cell in self.latency.items():
            out.update(cell.to_dict(col.key))
        return out


@dataclass(kw_only=True)
class FormRow(BenchRow):
    """Table III: one form of FaceLiVT-S (``full``, ``no_residual``, ``no_fused_bn``)."""

    form: str | None = None
    label: str | None = None
    IDENTITY: ClassVar[tuple[str, ...]] = ("form", "label")


@dataclass(kw_only=True)
class HeadsRow(BenchRow):
    """Table IV: FaceLiVT-S with ``heads`` MHLA heads."""

    heads: int | None = None
    IDENTITY: ClassVar[tuple[str, ...]] = ("heads",)


@dataclass(kw_only=True)
class ModelRow(BenchRow):
    """The peer tables: one model."""

    model: str | None = None
    IDENTITY: ClassVar[tuple[str, ...]] = ("model",)


ROW_TYPES: dict[str, type[BenchRow]] = {"table3": FormRow, "table4": HeadsRow, "peers": ModelRow, "peers_cuda": ModelRow, "yours": ModelRow}


def row_from_dict(table: str, flat: Mapping[str, Any]) -> BenchRow:
    """A row of ``table`` from its flat ``bench.json`` dict (the inverse of :meth:`BenchRow.to_dict`)."""
    cls = ROW_TYPES[table]
    own = {f.name for f in fields(cls)} - {"latency"}
    cells: dict[Column, dict[str, Any]] = {}
    for key, value in flat.items():
        if key in own:
            continue
        suffix = next((s for s in _CELL_SUFFIXES if key.endswith(s)), None)
        if suffix is None:
            raise ValueError(f"unknown key {key!r} in a {table} row")
        cells.setdefault(Column.parse(key[: -len(suffix)]), {})[suffix] = value
    latency = {col: _cell(parts) for col, parts in cells.items()}
    return cls(latency=latency, **{k: v for k, v in flat.items() if k in own})


def _cell(parts: dict[str, Any]) -> LatencyCell:
    p10, p90 = parts.get("_p10_p90_ms", (None, None))
    return LatencyCell(parts["_ms"], p10, p90, parts.get("_ratio"), parts.get("_img_s"))


@dataclass
class SpeedGoal:
    """FaceLiVT-S faster than EdgeFace-XS in one column."""

    goal: str
    met: bool
    facelivt_s_ms: float
    edgeface_xs_ms: float
    edgeface_over_facelivt: float  # latency ratio: > 1 when FaceLiVT-S is faster


@dataclass
class OrderingGoal:
    """Table III's ordering full < w/o residual rep. < w/o fused BN in one column."""

    goal: str
    met: bool
    ms: list[float]


Goal = SpeedGoal | OrderingGoal


@dataclass
class BenchResult:
    """Every table of one run. Rows given as flat dicts (``bench.json``'s layout) are read into typed rows."""

    environment: dict[str, Any]
    config: dict[str, Any]
    tables: dict[str, list[BenchRow]] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.tables = {name: [row_from_dict(name, r) if isinstance(r, Mapping) else r for r in rows] for name, rows in self.tables.items()}

    def to_json(self) -> str:
        data = {
            "environment": self.environment,
            "config": self.config,
            "tables": {name: [r.to_dict() for r in rows] for name, rows in self.tables.items()},
            "goals": [asdict(g) for g in self.goals],
        }
        return json.dumps(data, indent=2, default=str)


def evaluate_goals(result: BenchResult) -> list[Goal]:
    """The performance goals (FaceLiVT-S faster than EdgeFace-XS; Table III's ordering), each with ``met`` and by how much (ratio of latencies)."""
    return _speed_goals(result.tables.get("peers", [])) + _ordering_goals(result.tables.get("table3", []))


def _goal_columns(row: BenchRow) -> list[Column]:
    return [c for c in row.latency if c.runtime != "opt"]  # the goals are about the runtimes as shipped


def _speed_goals(rows: list[BenchRow]) -> list[Goal]:
    peers = {r.model: r for r in rows}
    if REFERENCE not in peers or "edgeface_xs" not in peers:
        return []
    ref, ef = peers[REFERENCE], peers["edgeface_xs"]
    goals: list[Goal] = []
    for col in _goal_columns(ref):
        ratio = ef.ms(col) / ref.ms(col)
        goals.append(SpeedGoal(f"FaceLiVT-S faster than EdgeFace-XS ({col.label})", ratio > 1.0, ref.ms(col), ef.ms(col), ratio))
    return goals


def _ordering_goals(rows: list[BenchRow]) -> list[Goal]:
    t3 = {r.form: r for r in rows}
    if len(t3) != 3:
        return []
    goals: list[Goal] = []
    for col in _goal_columns(t3["full"]):
        a, b, c = (t3[k].ms(col) for k in ("full", "no_residual", "no_fused_bn"))
        goals.append(OrderingGoal(f"reparameterization ordering full < w/o residual rep. < w/o fused BN ({col.label})", a < b < c, [a, b, c]))
    return goals
