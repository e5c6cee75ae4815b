"""The quickstart's config: one YAML file (default: ``quickstart.yaml`` beside this module).

Its training sections are a :class:`facelivt.training.Config`, read as ``facelivt train`` reads
a config; the ``quickstart`` section (plan and report) is :class:`QuickstartSettings`; both are
parsed by :mod:`facelivt.settings`. ``quick`` lists the overrides of the CI-sized run. Overrides
are dotted ``key=value`` strings, ``quickstart.*`` for the quickstart's own keys.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import yaml

from facelivt.errors import FaceLiVTError
from facelivt.files import check_not_input
from facelivt.models import list_models
from facelivt.models.hub import is_reference
from facelivt.settings import apply_overrides, build_dataclass, read_yaml, resolve_input_path
from facelivt.training import Config, config_from_dict

DEFAULT_CONFIG = Path(__file__).with_name("quickstart.yaml")
QUICK_BUDGET_MINUTES = 0.5


class QuickstartConfigError(FaceLiVTError, ValueError):
    """A quickstart setting a user got wrong."""


@dataclass
class QuickstartSettings:
    """What only the quickstart has: the plan's knobs and the report folder (see quickstart.yaml)."""

    out: str = "quickstart_out"
    budget_minutes: float = 6.5
    sizes_for_minutes: float = 6.5
    quick_below_minutes: float = 1.0
    train_share: float = 0.8
    teacher_step_ratio: float = 2.0
    teacher_batch_size: int = 32
    teacher_steps: Optional[int] = None
    min_student_steps: int = 60
    min_identities: int = 48
    pair_images_per_identity: int = 8
    parity_images: int = 32
    deploy_verification: bool = True
    max_images: int = 4000
    max_align_images: Optional[int] = None
    mtcnn_weights: Optional[str] = None
    peer: str = "edgeface_xs"
    bench_batch_sizes: list[int] = field(default_factory=lambda: [1, 16])
    bench_warmup: int = 5
    bench_runs: int = 30
    bench_rounds: int = 3
    progress: bool = True

    @property
    def tiny(self) -> bool:
        return self.budget_minutes < self.quick_below_minutes


@dataclass
class QuickstartConfig:
    training: Config  # the base of the three training runs
    quickstart: QuickstartSettings
    quick: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**self.training.to_dict(), "quickstart": asdict(self.quickstart), "quick": list(self.quick)}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _settings(data: dict[str, Any], overrides: Sequence[str]) -> QuickstartSettings:
    mine = [o[len("quickstart."):] for o in overrides if o.startswith("quickstart.")]
    section = apply_overrides(copy.deepcopy(data.get("quickstart") or {}), mine, QuickstartSettings)
    return build_dataclass(QuickstartSettings, section, "quickstart")


@contextmanager
def _user_errors() -> Iterator[None]:
    """The parser's ValueErrors (they name the key) as :class:`QuickstartConfigError`."""
    try:
        yield
    except FaceLiVTError:
        raise
    except ValueError as exc:
        raise QuickstartConfigError(str(exc)) from None


def load_quickstart_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> QuickstartConfig:
    """The file (default :data:`DEFAULT_CONFIG`), then the ``quick`` overrides when the budget makes
    this the CI-sized run, then ``overrides``; validated."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    data = read_yaml(path)
    quick = [str(q) for q in data.pop("quick", None) or []]
    with _user_errors():
        if _settings(data, overrides).tiny:
            overrides = [*quick, *overrides]
        qs = _settings(data, overrides)
        training = {k: v for k, v in data.items() if k != "quickstart"}
        cfg = config_from_dict(apply_overrides(training, [o for o in overrides if not o.startswith("quickstart.")], Config))
    search = [path.resolve().parent.parent, path.resolve().parent]
    cfg.data.root = resolve_input_path(cfg.data.root, search, keep=is_reference)
    qs.mtcnn_weights = resolve_input_path(qs.mtcnn_weights, search, keep=is_reference)
    config = QuickstartConfig(cfg, qs, quick)
    validate(config)
    return config


def validate(config: QuickstartConfig) -> None:
    """The checks the training config does not make (it validates itself)."""
    cfg, qs = config.training, config.quickstart
    if not 0 < qs.budget_minutes <= 24 * 60:
        raise QuickstartConfigError(f"the budget must be a positive number of minutes up to a day, got {qs.budget_minutes}")
    if qs.max_images < 40 or (qs.max_align_images is not None and qs.max_align_images < 40):
        raise QuickstartConfigError(f"quickstart.max_images and max_align_images must be at least 40, got {qs.max_images}, "
                                    f"{qs.max_align_images}")
    known = set(list_models())
    for key, name in (("model.name", cfg.model.name), ("distill.teacher", cfg.distill.teacher), ("quickstart.peer", qs.peer)):
        if name not in known:
            raise QuickstartConfigError(f"unknown model {name!r} ({key}); available: {', '.join(sorted(known))}")
    if cfg.data.type not in ("synthetic", "folder"):
        raise QuickstartConfigError(f"data.type must be synthetic or folder, got {cfg.data.type!r}")
    if cfg.data.type == "folder" and not (cfg.data.root and Path(cfg.data.root).is_dir()):
        raise FileNotFoundError(f"data folder not found: {cfg.data.root}")
    if not qs.out or (Path(qs.out).exists() and not Path(qs.out).is_dir()):
        raise QuickstartConfigError(f"the report folder must be a folder, got {qs.out!r}")
    check_not_input(qs.out, {"data.root": cfg.data.root if cfg.data.type == "folder" else None,
                             "quickstart.mtcnn_weights": qs.mtcnn_weights}, inside_input=True)
