"""The ``facelivt`` command line with one more model name, ``tinynet`` (train_helpers.TinyNet), so tests
can run real ``facelivt train`` processes that finish in seconds: ``python tiny_cli.py train ...``."""
from __future__ import annotations

import sys

from facelivt.cli import main
from facelivt.models.registry import register_model

from train_helpers import TinyNet

register_model("tinynet", lambda embedding_size=16, **_: TinyNet(dim=embedding_size))

if __name__ == "__main__":
    sys.exit(main())
