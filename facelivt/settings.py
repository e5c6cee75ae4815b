"""Settings as data: nested dataclasses read from YAML, with typed dotted ``key=value`` overrides.

The one parser of every config of the project (the training :class:`facelivt.training.Config`, the
quickstart's settings, ...). A schema is a dataclass whose fields are scalars (``str``, ``int``,
``float``, ``bool``), optional scalars, lists of them, or other dataclasses (its sections)::

    @dataclass
    class Optim:
        lr: float = 6e-3
        betas: list[float] = field(default_factory=lambda: [0.9, 0.999])

    @dataclass
    class Schema:
        output: str = "runs/x"
        optim: Optim = field(default_factory=Optim)

    data = apply_overrides(read_yaml("c.yaml"), ["optim.lr=1e-3"], Schema)
    cfg = build_dataclass(Schema, data)

Every key of a section must be a field of that section's dataclass; an unknown key is an error that
lists the valid ones. Values from a file or an override are converted to the field's type (``6e-3``
is accepted for a float, ``none``/``null`` for an optional field, ``auto`` too for an optional bool,
``a,b`` or ``[a, b]`` for a list); an override of a string field keeps its text as written. Every
mistake is an :class:`facelivt.errors.InvalidInputError` naming the key.

This module imports nothing of facelivt but :mod:`facelivt.errors`; what a config means (its ranges,
choices and paths) is checked by the package that owns the schema.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import yaml

from facelivt.errors import InputNotFoundError, InvalidInputError

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# ----------------------------------------------------------------------------- the file


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds (an empty file: ``{}``)."""
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"config file {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise InvalidInputError(f"config file {path} must hold a mapping at the top level, got {type(loaded).__name__}")
    return loaded


# ----------------------------------------------------------------------------- typing helpers


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (Union, getattr(types, "UnionType", Union)):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


# ----------------------------------------------------------------------------- values


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert ``value`` (from YAML or an override) to the field type ``tp``; InvalidInputError naming ``key``."""
    inner, optional = _unwrap_optional(tp)
    empty = ("none", "null", "~", "", "auto") if inner is bool else ("none", "null", "~", "")  # an optional bool's None is "auto"
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in empty):
        if optional:
            return None
        raise InvalidInputError(f"config key {key!r} may not be empty (null)")
    if typing.get_origin(inner) in (list, Sequence, tuple):
        return _coerce_list(value, inner, key)
    if inner is Any:
        return value
    convert = _SCALARS.get(inner)
    if convert is None:
        raise TypeError(f"unsupported config field type {tp!r} for {key!r}")  # pragma: no cover
    return convert(value, key)


def _coerce_list(value: Any, tp: Any, key: str) -> list:
    (item_tp,) = typing.get_args(tp)[:1] or (Any,)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = yaml.safe_load(text)
        else:
            value = [v.strip() for v in text.split(",") if v.strip()] if text else []
    if not isinstance(value, (list, tuple)):
        raise InvalidInputError(f"config key {key!r} needs a list, got {value!r}")
    return [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]


def _coerce_bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, str)) and str(value).strip().lower() in _TRUE | _FALSE:
        return str(value).strip().lower() in _TRUE
    raise InvalidInputError(f"config key {key!r} needs true or false, got {value!r}")


def _coerce_int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise InvalidInputError(f"config key {key!r} needs an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise InvalidInputError(f"config key {key!r} needs an integer, got {value!r}")


def _coerce_float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise InvalidInputError(f"config key {key!r} needs a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise InvalidInputError(f"config key {key!r} needs a number, got {value!r}")


def _coerce_str(value: Any, key: str) -> str:
    if isinstance(value, (dict, list)):
        raise InvalidInputError(f"config key {key!r} needs a string, got {value!r}")
    if isinstance(value, bool):  # YAML turns a bare yes/no into a bool
        return "true" if value else "false"
    return str(value)


_SCALARS = {bool: _coerce_bool, int: _coerce_int, float: _coerce_float, str: _coerce_str}


# ----------------------------------------------------------------------------- schemas


def valid_keys(cls: type, prefix: str = "") -> list[str]:
    """Every dotted key the schema ``cls`` accepts (sections expanded)."""
    keys: list[str] = []
    for name, tp in _hints(cls).items():
        if _is_section(tp):
            keys.extend(valid_keys(tp, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"config section {where or 'top level'!r} must be a mapping, got {type(data).__name__}")
    hints = _hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        prefix = f"{where}." if where else ""
        valid = ", ".join(f"{prefix}{k}" for k in valid_keys(cls))
        raise InvalidInputError(f"unknown config key(s) {', '.join(prefix + str(k) for k in unknown)}; valid keys: {valid}")
    kwargs = {}
    for name, tp in hints.items():
        if name not in data:
            continue
        key = f"{where}.{name}" if where else name
        value = data[name]
        if _is_section(tp):
            kwargs[name] = _build(tp, value if value is not None else {}, key)
        else:
            kwargs[name] = _coerce(value, tp, key)
    return cls(**kwargs)


def build_dataclass(cls: type, data: Mapping[str, Any] | None, where: str = "") -> Any:
    """The schema ``cls`` from a nested mapping (missing keys keep their defaults). ``where``: the
    dotted name of the section ``data`` is, for the messages (``"quickstart"``; ``""``: the top level)."""
    return _build(cls, data or {}, where)


# ----------------------------------------------------------------------------- overrides


def parse_override(text: str) -> tuple[str, str]:
    """``"a.b=value"`` -> ``("a.b", "value")``."""
    if "=" not in text:
        raise InvalidInputError(f"override {text!r} is not of the form key=value (e.g. optim.lr=0.001)")
    key, value = text.split("=", 1)
    key = key.strip()
    if not key:
        raise InvalidInputError(f"override {text!r} has an empty key")
    return key, value


def _field_type(schema: type, parts: Sequence[str]) -> Any:
    cls: Any = schema
    for part in parts[:-1]:
        cls = _hints(cls)[part]
    return _hints(cls)[parts[-1]]


def _override_value(raw: str, tp: Any) -> Any:
    """The value an override's text stands for, before its conversion to the field type ``tp``."""
    inner, optional = _unwrap_optional(tp)
    if inner is str:  # keep the text as given (no YAML re-interpretation of e.g. 1e-5 or yes)
        return None if optional and raw.strip().lower() in ("none", "null", "~") else raw
    try:
        return yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], schema: type) -> dict[str, Any]:
    """Set dotted ``key=value`` overrides on the nested dict ``data`` (in place; missing sections are
    created), typed by the fields of ``schema``. Returns ``data``."""
    keys = valid_keys(schema)
    for text in overrides:
        key, raw = parse_override(text)
        if key not in keys:
            raise InvalidInputError(f"unknown config key {key!r} in override {text!r}; valid keys: {', '.join(keys)}")
        parts = key.split(".")
        tp = _field_type(schema, parts)
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = _coerce(_override_value(raw, tp), tp, key)
    return data


# ----------------------------------------------------------------------------- reading them back


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def resolve_input_path(path: str | None, search: Sequence[Path], keep: Callable[[str], bool] | None = None) -> str | None:
    """A relative input path is taken from the current directory when it exists there, else from the
    first of ``search`` (e.g. the repository holding the config file) where it exists; unchanged otherwise.
    ``keep``: what names something other than a path (``facelivt.models.hub.is_reference``: a pretrained
    name, an ``hf://`` or ``https://`` reference), returned as given."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if keep is not None and keep(path):
        return path
    if p.is_absolute() or p.exists():
        return str(p)
    for base in search:
        candidate = base / p
        if candidate.exists():
            return str(candidate.resolve())
    return str(p)
