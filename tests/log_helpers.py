"""The library's warnings are logged (``logging``, under the ``facelivt`` logger), not issued as Python
warnings: :func:`logs_warning` is their ``pytest.warns``."""
from __future__ import annotations

import contextlib
import logging
import re
from typing import Iterator

import pytest


@contextlib.contextmanager
def logs_warning(caplog: pytest.LogCaptureFixture, match: str = "", logger: str = "facelivt") -> Iterator[None]:
    """Fail unless the block logs a warning under ``logger`` whose message matches ``match`` (re.search)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=logger):
        yield
    found = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(logger)]
    assert any(re.search(match, m) for m in found), f"no warning matching {match!r} was logged; logged: {found}"


@contextlib.contextmanager
def logs_no_warning(caplog: pytest.LogCaptureFixture, logger: str = "facelivt") -> Iterator[None]:
    """Fail when the block logs a warning under ``logger``."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=logger):
        yield
    found = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and r.name.startswith(logger)]
    assert not found, found
