#!/usr/bin/env bash
# Build the one-folder bundle and check the frozen app; prints the bundle size and the times.
#
#   packaging/smoke.sh            # build (packaging/build.sh), then check dist/rnnviewer
#   RNNVIEWER_SMOKE_NO_BUILD=1 packaging/smoke.sh     # check the existing dist/rnnviewer
#
# Checks: the bundle holds rnnviewer's .py sources and resources, and none of what it must
# not carry (Qt translations, SciPy, system libraries the host provides); numpy's OpenBLAS
# is byte-identical to the wheel's (never stripped); every system library it needs from
# the host is there (packaging/host_libs.py); `--self-test` passes offscreen with a cold
# numba cache, then again warm without compiling anything; the cache folder is keyed by
# the bundled sources (an edited copy of the bundle gets another key); and, when xvfb-run
# and xwininfo exist, a real window opens (time to window: the app's own report of its
# first expose, RNNVIEWER_TIMING=1), it opens before the kernels are compiled on a cold
# cache (they finish while it is up), and it closes cleanly on SIGINT. Under CI (CI=true,
# root, apt-get) missing X tools are installed. Every run of the app has a time limit.
# Everything it writes stays in build/smoke/ (its own XDG cache and config folders).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
OUT="$ROOT/build/smoke"
APP="$ROOT/dist/rnnviewer/rnnviewer"
BUNDLE="$ROOT/dist/rnnviewer"
T_START=$SECONDS

fail() { echo "SMOKE FAILED: $*" >&2; exit 1; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
declare -a REPORT=()
report() { REPORT+=("$(printf '%-38s %s' "$1" "$2")"); echo "-- $1: $2"; }
timed() {  # timed LOG CMD...: run CMD with output to LOG; sets WALL_MS and CPU_MS (user+sys)
    local log=$1 t0 rc=0 TIMEFORMAT='%U %S'
    shift
    t0=$(now_ms)
    { time "$@" > "$log" 2>&1; } 2> "$log.time" || rc=$?
    WALL_MS=$(( $(now_ms) - t0 ))
    CPU_MS=$(awk '{printf "%d", ($1 + $2) * 1000}' "$log.time")
    return $rc
}

if [ "${RNNVIEWER_SMOKE_NO_BUILD:-0}" != "1" ]; then
    T0=$SECONDS
    bash packaging/build.sh
    report "build (fresh venv + pyinstaller)" "$((SECONDS - T0)) s"
fi
[ -x "$APP" ] || fail "$APP not found: build first (packaging/build.sh)"
PY="$ROOT/build/venv/bin/python"
[ -x "$PY" ] || PY=python3

rm -rf "$OUT"
mkdir -p "$OUT"
# The frozen app must choose its own numba cache folder: drop any the caller set
# (.ci/run exports one for the tests), and keep caches and settings inside build/smoke.
unset NUMBA_CACHE_DIR
export XDG_CACHE_HOME="$OUT/cache" XDG_CONFIG_HOME="$OUT/config"
CACHE="$XDG_CACHE_HOME/rnnviewer"

echo "== bundle contents"
INTERNAL="$BUNDLE/_internal"
for f in rnnviewer/app.py rnnviewer/engine/kernels/rnn.py rnnviewer/engine/numba_config.py \
         resources/icons/rnnviewer.png resources/rnnviewer.desktop resources/corpora; do
    [ -e "$INTERNAL/$f" ] || fail "bundle lacks _internal/$f"
done
[ -z "$(find "$INTERNAL/rnnviewer" -name '*.pyc' -not -path '*/__pycache__/*' -print -quit)" ] \
    || fail "rnnviewer collected as bytecode only: numba's cache and its key need the .py sources"
[ -n "$(find "$INTERNAL/rnnviewer/__pycache__" -name 'app.*.pyc' -print -quit 2>/dev/null)" ] \
    || fail "bundle lacks rnnviewer's precompiled __pycache__"
[ ! -e "$INTERNAL/PySide6/Qt/translations" ] || fail "Qt translations were not dropped"
for gone in scipy scipy.libs libstdc++.so.6 libX11.so.6 libfontconfig.so.1 libdbus-1.so.3 \
            libsystemd.so.0 PySide6/Qt/lib/libQt6Test.so.6; do
    [ ! -e "$INTERNAL/$gone" ] || fail "the bundle should not carry _internal/$gone"
done
dangling=$(find "$INTERNAL" -xtype l -print -quit)
[ -z "$dangling" ] || fail "dangling link in the bundle: $dangling"
# numpy's OpenBLAS must be exactly the wheel's (stripping it breaks numpy: NOTES.md)
WHEEL_LIBS=$("$PY" -c "import numpy, os; print(os.path.join(os.path.dirname(os.path.dirname(numpy.__file__)), 'numpy.libs'))" 2>/dev/null || true)
for lib in "$INTERNAL"/numpy.libs/*openblas*; do
    [ -f "$lib" ] || fail "no OpenBLAS in _internal/numpy.libs"
    if [ -f "$WHEEL_LIBS/$(basename "$lib")" ]; then
        cmp -s "$lib" "$WHEEL_LIBS/$(basename "$lib")" || fail "$(basename "$lib") differs from the wheel's (stripped?)"
    fi
done
ICU=$(find "$INTERNAL/PySide6/Qt/lib" -name 'libicudata.so.*' -size -15M | wc -l)
[ "$ICU" = 1 ] || echo "   note: the ICU data library was not reduced (no binutils at build time?)"
SIZE_MB=$(du -sm "$BUNDLE" | cut -f1)
SIZE_B=$(du -sb "$BUNDLE" | cut -f1)
report "bundle size (unpacked)" "${SIZE_MB} MB (du -sm; $(awk -v b="$SIZE_B" 'BEGIN {printf "%.1f", b / 1e6}') million bytes)"
du -sm "$INTERNAL"/* | sort -rn | sed -n '1,8s|'"$INTERNAL"'/|   |p'
echo "== system libraries taken from the host"
if ! "$PY" packaging/host_libs.py "$INTERNAL" > "$OUT/host-libs.txt" 2>&1 \
        && [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ] && command -v apt-get > /dev/null; then
    # a bare CI image: what a desktop (and the PySide6 wheel itself) takes for granted,
    # with the xcb platform plugin's own (libQt6XcbQpa: icccm, keysyms, cursor)
    apt-get update -qq > "$OUT/apt.log" 2>&1 || true
    apt-get install -y -qq libgl1 libegl1 libxcb1 libx11-6 libx11-xcb1 libfontconfig1 \
        libfreetype6 libdbus-1-3 libstdc++6 zlib1g libuuid1 libxcb-icccm4 libxcb-keysyms1 \
        libxcb-cursor0 >> "$OUT/apt.log" 2>&1 || true
fi
"$PY" packaging/host_libs.py "$INTERNAL" | sed 's/^/   /' || fail "this host lacks a library the bundle needs (above)"
VERSION=$(timeout 120 "$APP" --version) || fail "--version"
[[ "$VERSION" == rnnviewer\ * ]] || fail "--version printed: $VERSION"
timeout 120 "$APP" train --help > "$OUT/train-help.log" 2>&1 || { cat "$OUT/train-help.log"; fail "train --help"; }

echo "== frozen --self-test, cold numba cache"
export QT_QPA_PLATFORM=offscreen
timed "$OUT/selftest-cold.log" timeout 900 "$APP" --self-test || { cat "$OUT/selftest-cold.log"; fail "self-test (cold)"; }
report "self-test, cold cache" "${WALL_MS} ms wall, ${CPU_MS} ms CPU"
tail -1 "$OUT/selftest-cold.log"
KEYS=$(cd "$CACHE" && ls -d numba-* 2>/dev/null || true)
[ "$(echo "$KEYS" | wc -w)" = "1" ] || fail "expected one numba-<key> folder in $CACHE, found: $KEYS"
KEY="$KEYS"
NBI=$(find "$CACHE/$KEY" -name '*.nbi' | wc -l)
[ "$NBI" -gt 0 ] || fail "no numba cache index written in $CACHE/$KEY"
report "numba cache" "$KEY ($NBI kernels cached)"

echo "== frozen --self-test, warm numba cache (x5, then once with its phases)"
touch "$OUT/warm-marker"
sleep 1
TIMES=(); CPUS=()
for i in 1 2 3 4 5; do   # the plain command, as a user runs it
    timed "$OUT/selftest-warm$i.log" timeout 300 "$APP" --self-test \
        || { cat "$OUT/selftest-warm$i.log"; fail "self-test (warm)"; }
    TIMES+=("$WALL_MS"); CPUS+=("$CPU_MS")
done
# where the time goes: the app's own phases (RNNVIEWER_TIMING=1, counted after the
# imports; its window watch polls until the window shows, so this run is not timed above)
timed "$OUT/selftest-phases.log" env RNNVIEWER_TIMING=1 timeout 300 "$APP" --self-test \
    || { cat "$OUT/selftest-phases.log"; fail "self-test (warm, RNNVIEWER_TIMING=1)"; }
NEW=$(find "$CACHE" -newer "$OUT/warm-marker" -type f | wc -l)
[ "$NEW" = "0" ] || fail "the warm runs compiled again: $(find "$CACHE" -newer "$OUT/warm-marker" -type f)"
MEDIAN=$(printf '%s\n' "${TIMES[@]}" | sort -n | sed -n 3p)
CPU=$(printf '%s\n' "${CPUS[@]}" | sort -n | sed -n 3p)
report "self-test, warm cache (median of 5)" "${MEDIAN} ms wall, ${CPU} ms CPU (runs: ${TIMES[*]} ms; nothing recompiled)"
PHASES=$(sed -n 's/.*self-test phases (s): //p' "$OUT/selftest-phases.log" | head -1)
report "self-test phases, one more run (s)" "${PHASES:-not reported} (${WALL_MS} ms in all)"

echo "== the cache key follows the bundled sources"
EDITED="$OUT/bundle-edited"
cp -al "$BUNDLE" "$EDITED"                          # hard links: no extra space
KFILE="$EDITED/_internal/rnnviewer/engine/kernels/rnn.py"
cp --remove-destination "$BUNDLE/_internal/rnnviewer/engine/kernels/rnn.py" "$KFILE"
printf '\n# edited by packaging/smoke.sh\n' >> "$KFILE"
timeout 120 "$EDITED/rnnviewer" --version > /dev/null
KEYS2=$(cd "$CACHE" && ls -d numba-*)
NEWKEY=$(echo "$KEYS2" | grep -vx "$KEY" || true)
[ -n "$NEWKEY" ] || fail "editing a bundled kernel file did not change the cache key ($KEY)"
report "cache key after editing a kernel" "$KEY -> $NEWKEY"
rm -rf "$EDITED"

echo "== real window under Xvfb"
if ! command -v xvfb-run > /dev/null || ! command -v xwininfo > /dev/null; then
    if [ "${CI:-}" = "true" ] && [ "$(id -u)" = "0" ] && command -v apt-get > /dev/null; then
        apt-get update -qq > "$OUT/apt.log" 2>&1 || true
        apt-get install -y -qq xvfb xauth x11-utils libxcb-icccm4 libxcb-keysyms1 \
            libxcb-cursor0 >> "$OUT/apt.log" 2>&1 || true
    fi
fi
if command -v xvfb-run > /dev/null && command -v xwininfo > /dev/null; then
    unset QT_QPA_PLATFORM
    cat > "$OUT/window.sh" <<'EOF'
#!/usr/bin/env bash
# Inside Xvfb: start the app, wait until its main window is mapped, optionally wait for the
# numba cache index to appear, screenshot, then SIGINT.
# Prints "shown_ms window_ms cache_ms exit cpu_ms": shown_ms is the app's own report of its
# window's first expose (RNNVIEWER_TIMING=1, from RNNVIEWER_T0 set here just before the
# start); window_ms when xwininfo saw it mapped (polled every 50 ms); cpu_ms the app's CPU
# time by then.
set -u
APP=$1 CACHE=$2 SHOT=$3 WAIT_CACHE=$4 LOG=$5
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
t0=$(now_ms)
RNNVIEWER_TIMING=1 RNNVIEWER_T0=$(date +%s.%N) "$APP" > "$LOG" 2>&1 &
pid=$!
win=""
while [ -z "$win" ] && [ $(( $(now_ms) - t0 )) -lt 120000 ] && kill -0 $pid 2>/dev/null; do
    for id in $(xwininfo -root -tree 2>/dev/null | awk '/\("rnnviewer" "rnnviewer"\)/ {print $1}'); do
        if xwininfo -id "$id" 2>/dev/null | grep -q IsViewable; then win=$id; break; fi
    done
    [ -n "$win" ] || sleep 0.05
done
t_win=$(( $(now_ms) - t0 ))
cpu=-1
if [ -n "$win" ] && read -r -a st < "/proc/$pid/stat"; then   # CPU time used until then
    cpu=$(( (st[13] + st[14]) * 1000 / $(getconf CLK_TCK) ))
fi
[ -n "$win" ] || t_win=-1
t_cache=-1
if [ "$WAIT_CACHE" = 1 ] && [ -n "$win" ]; then
    # wait for the first cached kernel; meanwhile keep the newest screenshot that was
    # taken entirely before it appeared (it shows the window while compiling)
    next_shot=$(( $(now_ms) + 500 ))
    while [ $(( $(now_ms) - t0 )) -lt 300000 ] && kill -0 $pid 2>/dev/null; do
        if [ -n "$(find "$CACHE" -name '*.nbi' -print -quit 2>/dev/null)" ]; then
            t_cache=$(( $(now_ms) - t0 )); break
        fi
        if [ "$(now_ms)" -gt "$next_shot" ] && command -v import > /dev/null; then
            import -window root "png:$SHOT.tmp" 2>/dev/null || true
            if [ -z "$(find "$CACHE" -name '*.nbi' -print -quit 2>/dev/null)" ] && [ -f "$SHOT.tmp" ]; then
                mv "$SHOT.tmp" "$SHOT"
            fi
            next_shot=$(( $(now_ms) + 1500 ))
        fi
        sleep 0.1
    done
    rm -f "$SHOT.tmp"
else
    sleep 1
    if [ -n "$SHOT" ] && command -v import > /dev/null; then import -window root "$SHOT" 2>/dev/null || true; fi
fi
kill -INT $pid 2>/dev/null
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then kill -TERM $pid; fi
wait $pid
code=$?
shown=$(awk '/window shown after/ {printf "%d", $(NF-1) * 1000; exit}' "$LOG")
echo "${shown:--1} $t_win $t_cache $code $cpu"
EOF
    chmod +x "$OUT/window.sh"
    # one app run in a fresh Xvfb; retried when the X server was not reachable (xvfb-run -a
    # can race with another X server starting on the machine)
    window_run() {  # window_run SHOT WAIT_CACHE LOG CACHE -> "shown_ms window_ms cache_ms exit cpu_ms"
        local line
        for _ in 1 2 3; do
            line=$(timeout 600 xvfb-run -a -s "-screen 0 1600x1000x24" "$OUT/window.sh" "$APP" "$4" "$1" "$2" "$3" | tail -1)
            read -r _ tw _ <<< "$line"
            if [ "${tw:--1}" != "-1" ] || ! grep -q "platform plugin\|connect to display" "$3"; then
                break
            fi
            sleep 1
        done
        echo "$line"
    }

    # warm cache: launch to window, median of 3
    WS=(); WT=(); WC=()
    for i in 1 2 3; do
        shot=""; [ "$i" = 1 ] && shot="$OUT/window-warm.png"
        read -r ts tw _ code cpu < <(window_run "$shot" 0 "$OUT/window-warm$i.log" "$CACHE")
        [ "${tw:--1}" -ge 0 ] || { cat "$OUT/window-warm$i.log"; fail "no window appeared under Xvfb"; }
        [ "$ts" -ge 0 ] || { cat "$OUT/window-warm$i.log"; fail "the app did not report its window shown"; }
        [ "$code" = 0 ] || { cat "$OUT/window-warm$i.log"; fail "the app exited with $code after SIGINT (139: it crashed)"; }
        WS+=("$ts"); WT+=("$tw"); WC+=("$cpu")
    done
    median() { printf '%s\n' "$@" | sort -n | sed -n 2p; }
    report "launch to window, warm (median of 3)" "$(median "${WS[@]}") ms to the first expose (runs: ${WS[*]} ms); mapped by $(median "${WT[@]}") ms, $(median "${WC[@]}") ms CPU"

    # cold cache: the window must be up before the kernels are compiled
    export XDG_CACHE_HOME="$OUT/cache-cold"
    read -r _ tw tc code _ < <(window_run "$OUT/window-cold.png" 1 "$OUT/window-cold.log" "$XDG_CACHE_HOME")
    [ "${tw:--1}" -ge 0 ] || { cat "$OUT/window-cold.log"; fail "no window appeared (cold cache)"; }
    [ "$tc" -ge 0 ] || { cat "$OUT/window-cold.log"; fail "kernels never compiled in the window"; }
    [ "$tc" -gt "$tw" ] || fail "kernels were cached (${tc} ms) before the window was up (${tw} ms)"
    [ "$code" = 0 ] || { cat "$OUT/window-cold.log"; fail "the app exited with $code after SIGINT"; }
    report "cold start: window, kernels cached" "window at ${tw} ms, kernels compiled by ${tc} ms"
    [ -f "$OUT/window-cold.png" ] && echo "   screenshot while compiling: $OUT/window-cold.png"
    export XDG_CACHE_HOME="$OUT/cache"
else
    report "real window" "SKIPPED (needs xvfb-run and xwininfo: apt-get install xvfb xauth x11-utils)"
fi

echo
echo "== rnnviewer frozen smoke test passed in $((SECONDS - T_START)) s"
printf '   %s\n' "${REPORT[@]}"
