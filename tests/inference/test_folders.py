"""Folder runs: how a failure is told apart from the file it is about; symlinked identity folders."""
from __future__ import annotations

from pathlib import Path

import pytest

from facelivt.inference import NoFaceError, failure_reason, load_image
from facelivt.inference.images import ImageLoadError


def test_failure_reason_leaves_out_the_file_name(tmp_path):
    text = tmp_path / "text.jpg"
    text.write_text("not an image")
    with pytest.raises(ImageLoadError) as err:
        load_image(text)
    assert str(err.value).startswith(f"{text}: ")  # alone, the error names its file
    assert failure_reason(err.value, text) == "not an image file (or a format PIL cannot read)"
    with pytest.raises(FileNotFoundError) as err:
        load_image(tmp_path / "gone.jpg")
    assert failure_reason(err.value, tmp_path / "gone.jpg") == "image not found"
    assert failure_reason(NoFaceError("img/x.png: no face found"), Path("img/x.png")) == "no face found"
    assert failure_reason(ValueError("something else"), "img/x.png") == "something else"
