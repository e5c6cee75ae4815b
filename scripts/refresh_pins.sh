#!/usr/bin/env bash
# Refresh constraints.txt: resolve the newest releases within pyproject.toml's ranges in a new, empty
# virtual environment (scripts/install.sh with FACELIVT_PINS= ), then write its `pip freeze` there.
# torch stays at its current pin unless TORCH=X.Y.Z is given. Then run `bash .ci/run` and commit
# constraints.txt only if it is green:   bash scripts/refresh_pins.sh && bash .ci/run
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
TORCH="${TORCH:-$(sed -n 's/^torch==//p' constraints.txt 2>/dev/null || true)}"
[ -n "$TORCH" ] || { echo "refresh_pins.sh: no torch pin in constraints.txt: give TORCH=X.Y.Z" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
# shellcheck disable=SC1091
source "$tmp/venv/bin/activate"
python -m pip --disable-pip-version-check -q install "torch==$TORCH"
FACELIVT_PINS= bash scripts/install.sh dev
{
    echo "# Exact releases the test suite was last green with: CI (.ci/run) and scripts/install.sh install"
    echo "# from this file; pyproject.toml keeps ranges. Made by scripts/refresh_pins.sh on $(date -u +%Y-%m-%d)"
    echo "# with $(python -c 'import platform; print("Python", platform.python_version(), "on", platform.system(), platform.machine())')."
    echo "# Local build labels (torch's +cpu) are dropped, so a CUDA build of the same release satisfies a pin."
    python -m pip --disable-pip-version-check freeze --exclude-editable --exclude facelivt | sed -E 's/^([^=]+==[^+]+)\+.*/\1/'
} > "$tmp/constraints.txt"
python scripts/pins.py --installed --constraints "$tmp/constraints.txt"
python - "$tmp/constraints.txt" <<'PY'
import sys
from facelivt.files import write_text
write_text("constraints.txt", open(sys.argv[1]).read())
PY
echo "refresh_pins.sh: wrote constraints.txt ($(grep -vc '^#' constraints.txt) pins); now run: bash .ci/run"
