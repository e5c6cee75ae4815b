"""Training configuration: the schema (nested dataclasses), its checks, and how a run reads it.

A config file is plain data (see ``configs/*.yaml``)::

    output: runs/cpu_small
    model: {name: facelivt_s, head: gap}
    data: {type: folder, root: data/celeba_subset_112, held_out_fraction: 0.2}
    optim: {lr: 6.0e-3}

It is read by :mod:`facelivt.settings`, the parser of every config: every key of a section must be
a field of that section's dataclass (an unknown key is an error that lists the valid ones), and
overrides use dotted keys (``optim.lr=0.001``, ``model.name=facelivt_m``, ``output=runs/x``) whose
values are converted to the field's type (``6e-3`` is accepted for a float, ``none``/``null`` for an
optional field, ``a,b`` or ``[a, b]`` for a list). This module adds what the values mean: ranges,
choices, where relative input paths are found, and which changes a resumed run reports.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from facelivt.cpu import check_threads
from facelivt.errors import InvalidInputError, check_input_file
from facelivt.files import check_not_input
from facelivt.losses.distill import DISTILL_KINDS
from facelivt.losses.margin import MARGINS
from facelivt.models.config import HEADS
from facelivt.models.hub import is_reference
from facelivt.models.pretrained import pretrained_weights
from facelivt.models.registry import check_model_name
from facelivt.precision import AMP_MODES
from facelivt.settings import apply_overrides, build_dataclass, flatten, read_yaml, resolve_input_path
CACHE_MODES = ("none", "memory", "disk")
CACHE_DTYPES = ("float16", "float32")
DATA_TYPES = ("recordio", "folder", "synthetic")
RESUME_MODES = ("auto", "never")


@dataclass
class ModelConfig:
    """The student (or the only) network."""

    name: str = "facelivt_s"
    head: str = "gap"  # "gap" (paper) or "gdc"
    num_heads: Optional[int] = None  # MHLA heads; None = the variant's default (16; FaceLiVTv2: 4)
    embedding_size: int = 512
    weights: Optional[str] = None  # start from these weights: a file (safetensors, released .pt) or a reference (hf://, https://)
    pretrained: bool = False  # start from the published pretrained weights of model.name (`facelivt models`)
    # NHWC (true) or NCHW (false); auto (None): channels-last on CUDA, on a CPU as facelivt.cpu.cpu_defaults measured
    # for its ISA (channels-last on both AVX-512 and AVX2 in facelivt.cpu.MEASURED)
    channels_last: Optional[bool] = None
    # the 1x1 ConvBNs of a channels-last model as F.linear (true) or as convolutions (false); auto (None): on a
    # CPU as facelivt.cpu.cpu_defaults measured for its ISA, convolutions on a GPU (facelivt.models.layers.ConvBN)
    linear_1x1: Optional[bool] = None
    compile: bool = False  # torch.compile the backbone


@dataclass
class DataConfig:
    """Where the training images come from and how identities are split."""

    type: str = "folder"  # recordio | folder | synthetic
    root: Optional[str] = None  # data folder (recordio: the folder holding train.rec/train.idx)
    num_identities: int = 64  # synthetic only
    images_per_identity: int = 16  # synthetic only
    synthetic_seed: int = 0  # synthetic only
    held_out_fraction: float = 0.0  # identities kept out of training for verification
    split_seed: int = 0
    flip: bool = True  # random horizontal flip (deterministic per seed, epoch and sample)
    num_workers: int = 4
    max_bad_fraction: float = 0.01
    label_cache: Optional[str] = None  # recordio only: .npz remembering the labels of a large set


@dataclass
class LossConfig:
    """Margin softmax through Partial FC (CosFace s=64 m=0.4, the FaceLiVT paper's recipe, ICIP 2025)."""

    margin: str = "cosface"  # cosface | arcface | combined
    s: float = 64.0
    m1: Optional[float] = None
    m2: Optional[float] = None
    m3: Optional[float] = None
    sample_rate: float = 1.0  # Partial FC negative-centre sampling; 1.0 = model parallel only


@dataclass
class DistillConfig:
    """Embedding distillation from a frozen teacher: ``L = L_cls + alpha * L_dis``."""

    enabled: bool = False
    teacher: str = "facelivt_l_mhsa"
    teacher_weights: Optional[str] = None
    allow_random_teacher: bool = False  # only for tests / benchmarks: no weights -> random teacher
    kind: str = "mse"  # mse (released) | l1 (seed Eq. 9) | cosine
    alpha: float = 0.5
    normalize: bool = False
    cache: str = "memory"  # none | memory | disk (memmap in the output folder)
    cache_dtype: str = "float16"  # float16 | float32


@dataclass
class OptimConfig:
    """AdamW with per-step polynomial decay and optional linear warm-up."""

    lr: float = 6e-3
    weight_decay: float = 1e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    min_lr: float = 1e-5
    power: float = 1.0
    warmup_steps: int = 0
    warmup_epochs: float = 0.0  # added to warmup_steps after conversion to steps
    clip_grad_norm: float = 5.0  # on the backbone's gradients; 0 disables


@dataclass
class TrainSection:
    """Loop, precision, checkpoints, time budget."""

    epochs: int = 20
    max_steps: Optional[int] = None  # optimiser steps; shortens the schedule to this many steps
    batch_size: int = 384  # images per optimiser step over all processes and accumulation steps
    accumulate: int = 1  # gradient accumulation steps
    amp: str = "auto"  # auto (bf16/fp16 on CUDA; on a CPU bf16 where it has native bf16, else none) | none | bf16 | fp16
    device: str = "auto"
    seed: int = 0
    deterministic: bool = False
    num_threads: Optional[int] = None  # torch CPU threads of this process
    max_minutes: Optional[float] = None  # time budget: stop cleanly (checkpoint + export) when spent
    checkpoint_every_steps: int = 1000  # 0: only at the end of each epoch and of the run
    log_every_steps: int = 50
    progress: bool = True
    tensorboard: bool = True
    resume: str = "auto"  # auto: continue from output/checkpoints if present | never | a checkpoint folder


@dataclass
class EvalConfig:
    """Periodic verification: .bin sets and/or pairs of held-out identities."""

    bins: list[str] = field(default_factory=list)
    heldout_pairs: int = 0  # pairs (half positive) from the held-out identities; 0 = none
    every_steps: int = 0  # 0: only at the end of each epoch (if every_epoch) and of the run
    every_epoch: bool = True
    batch_size: int = 64
    best_metric: Optional[str] = None  # set whose accuracy picks "best" (default: heldout, else first bin)


@dataclass
class Config:
    output: str = "runs/facelivt"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainSection = field(default_factory=TrainSection)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (YAML / JSON / weights_only-safe)."""
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def config_from_dict(data: Mapping[str, Any] | None) -> Config:
    """Build and validate a :class:`Config` from a nested mapping (missing keys keep their defaults)."""
    cfg = build_dataclass(Config, data)
    validate_config(cfg, need_data=False)
    return cfg


def _resolve_paths(cfg: Config, search: Sequence[Path]) -> None:
    def resolve(path: str | None) -> str | None:
        return resolve_input_path(path, search, keep=is_reference)

    cfg.data.root = resolve(cfg.data.root)
    cfg.model.weights = resolve(cfg.model.weights)
    cfg.distill.teacher_weights = resolve(cfg.distill.teacher_weights)
    cfg.eval.bins = [resolve(b) or b for b in cfg.eval.bins]


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Read a YAML config (or start from the defaults when ``path`` is None) and apply overrides.

    Relative input paths (data root, weights, .bin sets) are looked up in the current directory,
    then next to the config file's folder (so ``configs/x.yaml`` can name ``data/...`` relative to
    the folder holding ``configs/``)."""
    data: dict[str, Any] = {}
    search: list[Path] = []
    if path is not None:
        path = check_input_file(path, "config file")
        data = read_yaml(path)
        search = [Path(path).resolve().parent.parent, Path(path).resolve().parent]
    # validate the file's keys before overriding (clear message for typos in the file)
    build_dataclass(Config, data)
    cfg = build_dataclass(Config, apply_overrides(data, overrides, Config))
    _resolve_paths(cfg, search)
    validate_config(cfg)
    return cfg


# Keys whose change makes a checkpoint meaningless for the run (other architecture, other classes).
STATE_KEYS = (
    "model.name",
    "model.head",
    "model.num_heads",
    "model.embedding_size",
    "data.type",
    "data.held_out_fraction",
    "data.split_seed",
    "data.num_identities",
    "data.images_per_identity",
    "data.synthetic_seed",
)
# Keys that may differ on every resume without being worth a mention.
_RUN_KEYS = ("output", "train.resume")


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{dotted key: (saved value, current value)}`` for every key that differs (both nested dicts)."""
    old, new = flatten(saved), flatten(current)
    keys = [k for k in new if k not in _RUN_KEYS and k in old and old[k] != new[k]]
    return {k: (old[k], new[k]) for k in keys}


def _choice(value: str, allowed: Sequence[str], key: str) -> None:
    if value not in allowed:
        raise InvalidInputError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


def validate_config(cfg: Config, need_data: bool = True) -> None:
    """Range and choice checks with messages naming the key (``need_data=False``: the data set is
    given as an object, so ``data.root`` is not needed). Sections are checked in this order, so the
    first mistake is the one reported."""
    _check_model_data(cfg, need_data)
    _check_loss(cfg)
    _check_optim(cfg.optim)
    _check_train(cfg.train)
    _check_eval(cfg)
    if not cfg.output:
        raise InvalidInputError("output (the run folder) must be set")
    # not the data folder nor inside it (the run's folders would be read as identities); inputs not in the run folder
    inputs = {"data.root": cfg.data.root, "model.weights": cfg.model.weights,
              "distill.teacher_weights": cfg.distill.teacher_weights, "eval.bins": cfg.eval.bins}
    check_not_input(cfg.output, inputs, inside_input=True, holds_input=True)


def _check_model_data(cfg: Config, need_data: bool) -> None:
    check_model_name(cfg.model.name)  # first: the other model.* checks and the weights assume a known model
    _choice(cfg.model.head, HEADS, "model.head")
    if cfg.model.pretrained:
        if cfg.model.weights:
            raise InvalidInputError("give model.weights or model.pretrained=true, not both")
        pretrained_weights(cfg.model.name)  # one without published weights: an error naming those that have them
    if cfg.model.embedding_size < 1:
        raise InvalidInputError(f"model.embedding_size must be >= 1, got {cfg.model.embedding_size}")
    _choice(cfg.data.type, DATA_TYPES, "data.type")
    if need_data and cfg.data.type != "synthetic" and not cfg.data.root:
        raise InvalidInputError(f"data.root is required for a {cfg.data.type} data set")
    if not 0.0 <= cfg.data.held_out_fraction < 1.0:
        raise InvalidInputError(f"data.held_out_fraction must be in [0, 1), got {cfg.data.held_out_fraction}")
    check_threads(cfg.data.num_workers, "data.num_workers", minimum=0)


def _check_loss(cfg: Config) -> None:
    _choice(cfg.loss.margin, MARGINS, "loss.margin")
    if not 0.0 < cfg.loss.sample_rate <= 1.0:
        raise InvalidInputError(f"loss.sample_rate must be in (0, 1], got {cfg.loss.sample_rate}")
    _choice(cfg.distill.kind, DISTILL_KINDS, "distill.kind")
    _choice(cfg.distill.cache, CACHE_MODES, "distill.cache")
    _choice(cfg.distill.cache_dtype, CACHE_DTYPES, "distill.cache_dtype")
    if cfg.distill.alpha < 0:
        raise InvalidInputError(f"distill.alpha must be >= 0, got {cfg.distill.alpha}")


def _check_optim(o: OptimConfig) -> None:
    if o.lr <= 0:
        raise InvalidInputError(f"optim.lr must be > 0, got {o.lr}")
    if not 0 <= o.min_lr <= o.lr:
        raise InvalidInputError(f"optim.min_lr must be in [0, optim.lr], got {o.min_lr}")
    if o.power <= 0:
        raise InvalidInputError(f"optim.power must be > 0, got {o.power}")
    if o.warmup_steps < 0 or o.warmup_epochs < 0:
        raise InvalidInputError("optim.warmup_steps and optim.warmup_epochs must be >= 0")
    if o.weight_decay < 0 or o.clip_grad_norm < 0:
        raise InvalidInputError("optim.weight_decay and optim.clip_grad_norm must be >= 0")
    if len(o.betas) != 2 or not all(0.0 <= b < 1.0 for b in o.betas):
        raise InvalidInputError(f"optim.betas must be two numbers in [0, 1), got {o.betas}")


def _check_train(t: TrainSection) -> None:
    if t.epochs < 1:
        raise InvalidInputError(f"train.epochs must be >= 1, got {t.epochs}")
    if t.max_steps is not None and t.max_steps < 1:
        raise InvalidInputError(f"train.max_steps must be >= 1, got {t.max_steps}")
    if t.batch_size < 1 or t.accumulate < 1:
        raise InvalidInputError("train.batch_size and train.accumulate must be >= 1")
    if t.batch_size % t.accumulate:
        raise InvalidInputError(f"train.batch_size ({t.batch_size}) must be divisible by train.accumulate ({t.accumulate})")
    _choice(t.amp, AMP_MODES, "train.amp")
    if t.max_minutes is not None and t.max_minutes <= 0:
        raise InvalidInputError(f"train.max_minutes must be > 0, got {t.max_minutes}")
    if t.checkpoint_every_steps < 0 or t.log_every_steps < 1:
        raise InvalidInputError("train.checkpoint_every_steps must be >= 0 and train.log_every_steps >= 1")
    check_threads(t.num_threads, "train.num_threads")
    if not t.resume:
        raise InvalidInputError("train.resume must be auto, never or a checkpoint folder")


def _check_eval(cfg: Config) -> None:
    e = cfg.eval
    if e.heldout_pairs < 0 or e.every_steps < 0 or e.batch_size < 1:
        raise InvalidInputError("eval.heldout_pairs and eval.every_steps must be >= 0, eval.batch_size >= 1")
    if e.heldout_pairs and cfg.data.held_out_fraction == 0.0:
        raise InvalidInputError("eval.heldout_pairs needs held-out identities: set data.held_out_fraction > 0")
