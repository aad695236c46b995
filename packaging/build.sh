#!/usr/bin/env bash
# Build the one-folder app dist/rnnviewer/ (run dist/rnnviewer/rnnviewer) from a fresh venv.
#
#   packaging/build.sh
#
# Steps: a new venv in build/venv; the dependencies from pyproject.toml plus PyInstaller,
# pinned by packaging/constraints.txt; PyInstaller with packaging/rnnviewer.spec; then
# strip the libraries (Linux; never the *.libs/ folders, see strip_bundle.py).
# Environment: PYTHON (interpreter for the venv, default python3),
#   RNNVIEWER_CONSTRAINTS (pin file; set it empty for the newest allowed versions),
#   RNNVIEWER_NO_STRIP=1 (skip the strip step), RNNVIEWER_CONSOLE=1 (Windows/macOS:
#   build a console app instead of a windowed one, to see --self-test output),
#   RNNVIEWER_REUSE_VENV=1 (keep build/venv from an earlier run if it has PyInstaller:
#   rebuilds after editing the spec or the code in about a minute; releases use a fresh one).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
BUILD="$ROOT/build"
VENV="$BUILD/venv"
CONSTRAINTS="${RNNVIEWER_CONSTRAINTS-$ROOT/packaging/constraints.txt}"
T0=$SECONDS

venv_python() { if [ -x "$VENV/bin/python" ]; then echo "$VENV/bin/python"; else echo "$VENV/Scripts/python.exe"; fi; }

fresh_venv() {  # a new venv with pyproject's dependencies and PyInstaller, pinned
    echo "== fresh venv: $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    PY="$(venv_python)"
    echo "== dependencies"
    "$PY" -m pip install -q --upgrade pip
    local deps=() pin=()
    while IFS= read -r dep; do deps+=("$dep"); done < <("$PY" - "$ROOT/pyproject.toml" <<'EOF'
import sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["package"]:
    print(dep)
EOF
)
    if [ -n "$CONSTRAINTS" ]; then pin=(-c "$CONSTRAINTS"); fi
    "$PY" -m pip install -q ${pin[@]+"${pin[@]}"} "${deps[@]}"
    "$PY" -m pip list --format=freeze > "$BUILD/build-requirements.txt"
}

rm -rf "$BUILD/pyinstaller" "$ROOT/dist/rnnviewer" "$ROOT/dist/rnnviewer.app"
if [ "${RNNVIEWER_REUSE_VENV:-0}" = "1" ] && "$(venv_python)" -c "import PyInstaller" 2> /dev/null; then
    echo "== reusing $VENV (RNNVIEWER_REUSE_VENV=1)"
    PY="$(venv_python)"
else
    fresh_venv
fi
T_PYI=$SECONDS

echo "== pyinstaller"
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$ROOT/dist" --workpath "$BUILD/pyinstaller" packaging/rnnviewer.spec

BUNDLE="$ROOT/dist/rnnviewer"
if [ "${RNNVIEWER_NO_STRIP:-0}" != "1" ] && [ -d "$BUNDLE" ]; then
    echo "== strip"
    "$PY" packaging/strip_bundle.py "$BUNDLE"
fi

if [ -d "$BUNDLE" ]; then
    SIZE=$(du -sm "$BUNDLE" | cut -f1)
    echo "== built $BUNDLE: ${SIZE} MB in $((SECONDS - T0)) s ($((T_PYI - T0)) s venv and" \
         "dependencies, $((SECONDS - T_PYI)) s PyInstaller and strip; versions: build/build-requirements.txt)"
fi
if [ -d "$ROOT/dist/rnnviewer.app" ]; then echo "== built $ROOT/dist/rnnviewer.app"; fi
