#!/usr/bin/env sh
# Install the built app for the current user, with a menu entry and icons (Linux).
#
#   packaging/install-linux.sh [BUNDLE]        # BUNDLE: default dist/rnnviewer
#   packaging/install-linux.sh --uninstall
#
# Copies the one-folder bundle to $PREFIX/lib/rnnviewer (PREFIX default ~/.local), links
# $PREFIX/bin/rnnviewer to it, installs resources/rnnviewer.desktop (Exec pointing at that
# link) into $XDG_DATA_HOME/applications and the icons into the hicolor theme.
set -eu
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-$HOME/.local}"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
APPDIR="$PREFIX/lib/rnnviewer"
LINK="$PREFIX/bin/rnnviewer"
DESKTOP="$DATA/applications/rnnviewer.desktop"
SIZES="16 24 32 48 64 128 256 512"

refresh() {
    command -v update-desktop-database > /dev/null && update-desktop-database -q "$DATA/applications" || true
    command -v gtk-update-icon-cache > /dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
}

if [ "${1:-}" = "--uninstall" ]; then
    rm -rf "$APPDIR"
    rm -f "$LINK" "$DESKTOP" "$DATA/icons/hicolor/scalable/apps/rnnviewer.svg"
    for s in $SIZES; do rm -f "$DATA/icons/hicolor/${s}x${s}/apps/rnnviewer.png"; done
    refresh
    echo "rnnviewer uninstalled"
    exit 0
fi

BUNDLE="${1:-$ROOT/dist/rnnviewer}"
[ -x "$BUNDLE/rnnviewer" ] || { echo "no app in $BUNDLE: run packaging/build.sh first" >&2; exit 1; }

rm -rf "$APPDIR"
mkdir -p "$PREFIX/lib" "$PREFIX/bin" "$DATA/applications" "$DATA/icons/hicolor/scalable/apps"
cp -a "$BUNDLE" "$APPDIR"
ln -sfn "$APPDIR/rnnviewer" "$LINK"
sed -e "s|^Exec=rnnviewer |Exec=$LINK |" -e "s|^TryExec=rnnviewer$|TryExec=$LINK|" \
    "$ROOT/resources/rnnviewer.desktop" > "$DESKTOP"
for s in $SIZES; do
    mkdir -p "$DATA/icons/hicolor/${s}x${s}/apps"
    cp "$ROOT/resources/icons/rnnviewer-$s.png" "$DATA/icons/hicolor/${s}x${s}/apps/rnnviewer.png"
done
cp "$ROOT/resources/icons/rnnviewer.svg" "$DATA/icons/hicolor/scalable/apps/rnnviewer.svg"
refresh
echo "rnnviewer installed: $LINK, menu entry $DESKTOP"
