"""facelivt.settings, the parser of every config: YAML files, dataclass schemas, typed key=value overrides
and their error messages. The schema here mirrors field types of the training config (tests/training/
test_train_config.py checks that config itself; the parser tests were there before)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

from facelivt.errors import InputNotFoundError, InvalidInputError
from facelivt.settings import (
    apply_overrides, build_dataclass, flatten, parse_override, read_yaml, resolve_input_path, valid_keys,
)


@dataclass
class Model:
    name: str = "facelivt_s"
    head: str = "gap"
    channels_last: Optional[bool] = None


@dataclass
class Data:
    type: str = "folder"
    root: Optional[str] = None


@dataclass
class Loss:
    s: float = 64.0
    m3: Optional[float] = None


@dataclass
class Distill:
    cache: str = "memory"


@dataclass
class Optim:
    lr: float = 6e-3
    min_lr: float = 1e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Train:
    epochs: int = 20
    max_steps: Optional[int] = None
    deterministic: bool = False
    max_minutes: Optional[float] = None


@dataclass
class Eval:
    bins: list[str] = field(default_factory=list)


@dataclass
class Debug:
    nan_at_step: Optional[int] = None


@dataclass
class Schema:
    output: str = "runs/x"
    model: Model = field(default_factory=Model)
    data: Data = field(default_factory=Data)
    loss: Loss = field(default_factory=Loss)
    distill: Distill = field(default_factory=Distill)
    optim: Optim = field(default_factory=Optim)
    train: Train = field(default_factory=Train)
    eval: Eval = field(default_factory=Eval)
    debug: Debug = field(default_factory=Debug)


def load(path: Path | None = None, overrides=()) -> Schema:
    """How a config is read: the file, its keys checked, then the overrides (as load_config does)."""
    data = read_yaml(path) if path is not None else {}
    build_dataclass(Schema, data)
    return build_dataclass(Schema, apply_overrides(data, overrides, Schema))


def test_overrides_are_typed(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {type: synthetic}\ntrain: {epochs: 2, max_steps: 4}\n")
    cfg = load(p, [
        "optim.lr=6e-3", "train.epochs=3", "train.deterministic=false", "model.name=facelivt_m",
        "train.max_minutes=2.5", "train.max_steps=none", "eval.bins=a.bin,b.bin", "optim.betas=[0.8, 0.99]",
        "output=somewhere", "loss.m3=0.35", "data.root=1e-5",
    ])
    assert cfg.optim.lr == pytest.approx(6e-3) and isinstance(cfg.optim.lr, float)
    assert cfg.train.epochs == 3 and isinstance(cfg.train.epochs, int)
    assert cfg.train.deterministic is False
    assert cfg.model.name == "facelivt_m"
    assert cfg.train.max_minutes == 2.5 and cfg.train.max_steps is None
    assert cfg.eval.bins == ["a.bin", "b.bin"] and cfg.optim.betas == [0.8, 0.99]
    assert cfg.output == "somewhere" and cfg.loss.m3 == 0.35
    assert cfg.data.root == "1e-5"  # strings stay as written
    assert cfg.data.type == "synthetic"


def test_yaml_float_without_dot_is_accepted(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {type: synthetic}\noptim: {lr: 6e-3, min_lr: 1e-5}\n")  # YAML reads 6e-3 as a string
    cfg = load(p)
    assert cfg.optim.lr == 6e-3 and cfg.optim.min_lr == 1e-5


def test_unknown_override_key_lists_valid_keys():
    with pytest.raises(ValueError) as exc:
        load(None, ["optim.lrr=0.1"])
    msg = str(exc.value)
    assert "optim.lrr" in msg and "valid keys" in msg and "optim.lr," in msg and "train.max_minutes" in msg


def test_unknown_key_in_file_is_named(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {type: synthetic}\ntrain: {epoch: 3}\n")
    with pytest.raises(ValueError, match=r"train\.epoch.*valid keys: train\.epochs"):
        load(p)
    p.write_text("modle: {name: x}\n")
    with pytest.raises(ValueError, match="modle"):
        load(p)


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.epochs=two", "train.epochs needs an integer|'train.epochs' needs an integer"),
        ("train.epochs=2.5", "needs an integer"),
        ("optim.lr=fast", "needs a number"),
        ("train.deterministic=maybe", "true or false"),
        ("train.epochs", "key=value"),
        ("=3", "empty key"),
        ("optim.betas={a: 1}", "needs a list"),
        ("train.epochs=null", "may not be empty"),
    ],
)
def test_bad_values_are_explained(override, match):
    with pytest.raises(InvalidInputError, match=match):
        load(None, [override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found") as info:
        read_yaml(tmp_path / "nope.yaml")
    assert isinstance(info.value, InputNotFoundError)
    p = tmp_path / "bad.yaml"
    p.write_text("a: [1, 2\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        read_yaml(p)
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="mapping"):
        read_yaml(p)
    p.write_text("")
    assert read_yaml(p) == {}


def test_valid_keys_cover_sections():
    keys = valid_keys(Schema)
    assert "output" in keys and "optim.lr" in keys and "distill.cache" in keys and "debug.nan_at_step" in keys
    assert not any(k in ("model", "optim") for k in keys)


def test_apply_overrides_creates_sections():
    data = apply_overrides({}, ["model.head=gdc", "train.max_minutes=null"], Schema)
    assert data == {"model": {"head": "gdc"}, "train": {"max_minutes": None}}


def test_an_optional_bool_is_auto_true_false_or_null():
    for text, want in (("auto", None), ("true", True), ("false", False), ("null", None), ("yes", True)):
        assert load(None, [f"model.channels_last={text}"]).model.channels_last is want
    with pytest.raises(ValueError, match="model.channels_last"):
        load(None, ["model.channels_last=sometimes"])


def test_sections_and_values_from_a_mapping():
    cfg = build_dataclass(Schema, {"model": None, "train": {"epochs": "7"}, "distill": {"cache": True}})
    assert cfg.model == Model() and cfg.train.epochs == 7
    assert cfg.distill.cache == "true"  # YAML turns a bare yes into a bool; a string field keeps it as text
    assert build_dataclass(Schema, None) == Schema()
    assert load(None, ["model.name=[a]"]).model.name == "[a]"  # an override of a string keeps its text
    with pytest.raises(InvalidInputError, match="'model.name' needs a string"):
        build_dataclass(Schema, {"model": {"name": ["a"]}})
    with pytest.raises(InvalidInputError, match="section 'train' must be a mapping, got list"):
        build_dataclass(Schema, {"train": [1]})
    with pytest.raises(InvalidInputError, match="unknown config key.*quickstart.nope; valid keys: quickstart.epochs"):
        build_dataclass(Train, {"nope": 1}, "quickstart")


def test_parse_override_and_flatten():
    assert parse_override(" optim.lr =a=b") == ("optim.lr", "a=b")
    assert flatten({"a": {"b": 1, "c": {"d": [2]}}, "e": None}) == {"a.b": 1, "a.c.d": [2], "e": None}


def test_relative_input_paths_are_found_beside_the_config(tmp_path, monkeypatch):
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    (repo / "data").mkdir(parents=True)
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert resolve_input_path("data", [repo]) == str((repo / "data").resolve())
    assert resolve_input_path("missing", [repo]) == "missing"
    assert resolve_input_path(None, [repo]) is None
    (elsewhere / "data").mkdir()
    assert resolve_input_path("data", [repo]) == "data"  # the current folder first
    (repo / "facelivt_s").mkdir()  # a folder of the name of a pretrained reference beside the config
    assert resolve_input_path("facelivt_s", [repo]) == str((repo / "facelivt_s").resolve())
    assert resolve_input_path("facelivt_s", [repo], keep=lambda p: p == "facelivt_s") == "facelivt_s"
    assert resolve_input_path("hf://o/r/f", [repo], keep=lambda p: p.startswith("hf://")) == "hf://o/r/f"
