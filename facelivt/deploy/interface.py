"""The interface every exported model has, whatever its format (layer 0 of :mod:`facelivt.deploy`).

Input ``input``: a ``(B, 3, H, W)`` float batch, RGB, ``(pixel / 255 - 0.5) / 0.5`` (``model.preprocess``);
output ``embedding``: ``(B, 512)``, not L2-normalised. The batch axis is dynamic unless a fixed batch
is asked for.
"""
from __future__ import annotations

from facelivt.errors import InvalidInputError
from facelivt.models.preprocess import DEFAULT_PREPROCESS

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
DEFAULT_INPUT_SIZE = DEFAULT_PREPROCESS.input_size


def parse_batch(batch: str | int | None, option: str = "batch") -> int | None:
    """``"dynamic"``/None -> None (dynamic batch axis); a positive integer (or its string) -> that fixed batch.
    ``option``: the name messages give the value (e.g. ``--batch-size``)."""
    if batch is None or (isinstance(batch, str) and batch.lower() == "dynamic"):
        return None
    try:
        value = int(batch)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{option} must be 'dynamic' or a positive integer, got {batch!r}") from None
    if value < 1:
        raise InvalidInputError(f"{option} must be 'dynamic' or a positive integer, got {batch!r}")

    return value


def batch_text(fixed: int | None) -> str:
    """How a parsed batch is written in reports and metadata: ``"dynamic"`` or the number."""
    return "dynamic" if fixed is None else str(fixed)
