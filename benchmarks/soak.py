"""Soak test: does memory stay flat over a long training run with every panel open?

Trains N steps (default 20,000) in the real main window, offscreen, with the window and
every registered panel open and visible (each panel in its own floating dock, so none
hides behind a tab), and samples the resident memory (VmRSS from /proc, after a
gc.collect()) of the window's process and of its training process every few hundred
steps. Growth is measured from
the first sample after the warm-up to the last one; the goal is under 5% for each.
`--headless` trains a TrainingSession without Qt (snapshots still made and kept).

    python benchmarks/soak.py                      # 20,000 steps, window + panels
    python benchmarks/soak.py --steps 2000 --sample-every 100
    python benchmarks/soak.py --headless --json soak.json

Exit code: 0 within the goal, 1 over it, 2 if training failed. Settings are read from and
written to a temporary folder, never the user's.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "numba_cache"))


def rss_kib(pid="self"):
    """Resident set size of process `pid` (this one by default) in KiB (Linux /proc); None
    elsewhere or if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Recorder:
    """RSS samples (step, seconds, KiB) taken at multiples of `every` steps: `samples` of
    this process, `training_samples` of the training process (`training_pid()` gives its
    pid: the window trains in a process of its own, training/process.py)."""

    def __init__(self, every, progress=True):
        self.every = every
        self.progress = progress
        self.next_step = 0
        self.samples = []
        self.training_samples = []
        self.training_pid = lambda: None
        self.t0 = time.monotonic()

    def maybe(self, step, force=False):
        if step >= self.next_step or force:
            gc.collect()
            kib = rss_kib()
            pid = self.training_pid()
            child = rss_kib(pid) if pid else None
            t = round(time.monotonic() - self.t0, 2)
            if kib is not None:
                self.samples.append((int(step), t, kib))
            if child is not None:
                self.training_samples.append((int(step), t, child))
            if self.progress and kib is not None:
                extra = f"  training process {child / 1024:7.1f} MiB" if child else ""
                print(f"soak: step {step:>7}  RSS {kib / 1024:7.1f} MiB{extra}  {t:8.1f} s",
                      file=sys.stderr, flush=True)
            self.next_step = (step // self.every + 1) * self.every


def summarize(samples, warmup, goal):
    """Growth after the warm-up: first sample at/after `warmup` to the last; least-squares slope."""
    after = [s for s in samples if s[0] >= warmup] or samples[-2:]
    if len(after) < 2:
        return {"error": "too few samples after the warm-up; run more steps"}
    base, last = after[0][2], after[-1][2]
    steps = [s[0] for s in after]
    kib = [s[2] for s in after]
    n = len(after)
    ms, mk = sum(steps) / n, sum(kib) / n
    var = sum((x - ms) ** 2 for x in steps)
    slope = sum((x - ms) * (y - mk) for x, y in zip(steps, kib)) / var if var else 0.0
    growth = (last - base) / base
    return {"baseline_step": after[0][0], "baseline_mib": round(base / 1024, 1),
            "final_mib": round(last / 1024, 1), "peak_mib": round(max(kib) / 1024, 1),
            "growth_percent": round(100 * growth, 2),
            "slope_kib_per_1000_steps": round(1000 * slope, 1),
            "goal_percent": 100 * goal, "ok": growth < goal}


# ------------------------------------------------------------------ headless
def soak_headless(config, steps, rec):
    from rnnviewer.training.session import TrainingSession
    kept = {}
    s = TrainingSession(config, snapshot_hz=30.0)
    s.add_callback("on_snapshot", lambda snap: kept.__setitem__("last", snap))  # latest wins
    s.compile()
    rec.maybe(0, force=True)
    while s.step < steps:
        s.run(max_steps=min(rec.every, steps - s.step))
        if s.diverged is not None:
            return {"error": str(s.diverged)}
        rec.maybe(s.step)
    return {"steps": s.step, "snapshots": kept["last"].serial if kept else 0}


# ------------------------------------------------------------------ window
def _use_temp_settings(folder):
    from PySide6.QtCore import QSettings
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(folder))


def show_every_panel(win, app, only=None, width=520, height=380):
    """Every panel (or those named in `only`) in its own visible floating dock on a grid
    (no tabs hiding any); the others hidden."""
    from PySide6.QtCore import QPoint
    for name, dock in win.docks.items():
        if only and name not in only:
            dock.hide()
    docks = [d for n, d in win.docks.items() if not only or n in only]
    for k, dock in enumerate(docks):
        dock.show()
        dock.setFloating(True)
        dock.resize(width, height)
        dock.move(QPoint(40 + (k % 4) * (width + 10), 40 + (k // 4) * (height + 40)))
    app.processEvents()
    return [name for name, p in win.panels.items() if p.isVisible()]


_QUIET = ("This plugin does not support propagateSizeHints()",
          "This plugin does not support raise()")   # offscreen platform and floating docks


def _qt_messages(counts):
    """A Qt message handler that counts every message and prints all but _QUIET ones."""
    def handler(mode, context, message):
        counts[message] = counts.get(message, 0) + 1
        if message not in _QUIET:
            print(f"Qt: {message}", file=sys.stderr)
    return handler


def soak_window(config, steps, rec, timeout, only=None):
    import logging

    from PySide6.QtCore import qInstallMessageHandler

    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.panels import PANEL_ERRORS
    from rnnviewer.ui.runner import make_app, wait_until

    qt_counts = {}
    qInstallMessageHandler(_qt_messages(qt_counts))
    logging.getLogger("rnnviewer.ui.panels").setLevel(logging.CRITICAL)  # listed in the report
    app = make_app()
    win = MainWindow(config, interactive=False, restore_settings=False)
    win.resize(1400, 900)
    win.show()
    visible = show_every_panel(win, app, only)
    info = {"panels": list(win.panels), "visible_panels": visible,
            "panel_import_errors": sorted(PANEL_ERRORS)}
    try:
        win.start()
        rec.training_pid = lambda: win.worker.child_pid
        if not wait_until(lambda: win.snapshot is not None or win.errors, timeout):
            return {**info, "error": "timed out waiting for the first snapshot (compiling)"}
        if win.errors:
            return {**info, "error": win.errors[0][0]}
        rec.maybe(0, force=True)
        frames0 = {n: p.frames for n, p in win.panels.items()}
        win.worker.set_running(True)
        t_end = time.monotonic() + timeout
        while win.snapshot.step < steps and not win.errors and time.monotonic() < t_end:
            wait_until(lambda: win.snapshot.step >= rec.next_step or win.errors, 1.0)
            rec.maybe(win.snapshot.step)
            if win.snapshot.step >= steps:
                win.worker.set_running(False)
        win.worker.set_running(False)
        wait_until(lambda: not win.running, 5)
        rec.maybe(win.snapshot.step, force=True)
        frames = {n: p.frames - frames0[n] for n, p in win.panels.items()}
        info.update(steps=win.snapshot.step, frames_per_panel=frames,
                    visible_at_end=[n for n, p in win.panels.items() if p.isVisible()],
                    qt_messages={m: n for m, n in qt_counts.items() if m not in _QUIET})
        if win.errors:
            info["error"] = win.errors[0][0]
        elif win.snapshot.step < steps:
            info["error"] = f"timed out at step {win.snapshot.step} of {steps}"
        return info
    finally:
        win.stop()
        win.close()


# ------------------------------------------------------------------ main
def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--headless", action="store_true", help="no window: TrainingSession only")
    p.add_argument("--sample-every", type=int, default=250, metavar="N",
                   help="steps between RSS samples (default 250)")
    p.add_argument("--warmup", type=int, default=None, metavar="N",
                   help="steps before the baseline sample (default: 10%% of --steps)")
    p.add_argument("--goal", type=float, default=5.0, help="allowed growth in %% (default 5)")
    p.add_argument("--task", default="sine")
    p.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=50)
    p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds (default 6 h)")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no line per RSS sample")
    p.add_argument("--panels", metavar="NAMES", help="only these panels (comma-separated "
                   "object names, e.g. curves,weights) open; to find which one grows")
    args = p.parse_args(argv)
    if args.steps < 2 * args.sample_every:
        p.error("--steps must be at least twice --sample-every")
    warmup = args.steps // 10 if args.warmup is None else args.warmup

    from rnnviewer.training.session import SessionConfig
    config = SessionConfig(task=args.task, cell=args.cell, hidden=args.hidden, batch=args.batch,
                           seq_len=args.seq_len).validate()
    rec = Recorder(args.sample_every, progress=not args.quiet)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rnnviewer-soak-") as tmp:
        if args.headless:
            run = soak_headless(config, args.steps, rec)
        else:
            _use_temp_settings(tmp)
            only = [n.strip() for n in args.panels.split(",")] if args.panels else None
            run = soak_window(config, args.steps, rec, args.timeout, only)
    elapsed = time.monotonic() - t0
    report = {"mode": "headless" if args.headless else "window", "config": config.to_dict(),
              "requested_steps": args.steps, "warmup_steps": warmup,
              "seconds": round(elapsed, 1), "python": platform.python_version(), **run,
              "samples": rec.samples}
    if "error" not in run:
        report["memory"] = summarize(rec.samples, warmup, args.goal / 100)
        if rec.training_samples:
            report["training_memory"] = summarize(rec.training_samples, warmup, args.goal / 100)
            report["training_samples"] = rec.training_samples
        (s0, t0_, _), (s1, t1, _) = rec.samples[0], rec.samples[-1]   # training time only
        report["steps_per_second"] = round((s1 - s0) / max(t1 - t0_, 1e-9), 1)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print(format_report(report))
    memories = [report[k] for k in ("memory", "training_memory") if k in report]
    if "error" in run or any("error" in m for m in memories):
        return 2
    return 0 if all(m["ok"] for m in memories) else 1


def format_report(r):
    lines = [f"rnnviewer soak ({r['mode']}): {r['config']['task']}, "
             f"{r['config']['cell'].upper()} H={r['config']['hidden']}, batch "
             f"{r['config']['batch']}, seq_len {r['config']['seq_len']}"]
    if r["mode"] == "window":
        lines.append(f"panels open and visible: {len(r.get('visible_panels', []))}/"
                     f"{len(r.get('panels', []))} ({', '.join(r.get('visible_panels', []))})")
        if r.get("panel_import_errors"):
            lines.append("panel modules that failed to import: "
                         + ", ".join(r["panel_import_errors"]))
        if r.get("qt_messages"):
            lines.append(f"Qt warnings: {sum(r['qt_messages'].values())} "
                         f"({len(r['qt_messages'])} distinct)")
        if "frames_per_panel" in r:
            lines.append("redraws per panel: " + ", ".join(
                f"{k} {v}" for k, v in r["frames_per_panel"].items()))
    if "error" in r:
        lines.append(f"FAILED: {r['error']}")
        return "\n".join(lines)
    lines.append(f"{r['steps']} steps, {r['seconds']} s in all ({r['steps_per_second']} "
                 "steps/s while training), "
                 f"{len(r['samples'])} RSS samples")
    for what, key, samples in (("this process", "memory", "samples"),
                               ("training process", "training_memory", "training_samples")):
        if key not in r:
            continue
        m, ss = r[key], r[samples]
        lines.append(f"{what}, RSS MiB by step: " + ", ".join(
            f"{s}:{kib / 1024:.1f}" for s, _, kib in ss[:: max(1, len(ss) // 12)]))
        if "error" in m:
            lines.append(f"FAILED: {m['error']}")
            continue
        lines.append(f"{what} after warm-up (step {m['baseline_step']}): {m['baseline_mib']} "
                     f"-> {m['final_mib']} MiB (peak {m['peak_mib']}), growth "
                     f"{m['growth_percent']}% (goal < {m['goal_percent']:g}%), slope "
                     f"{m['slope_kib_per_1000_steps']} KiB per 1000 steps: "
                     f"{'OK' if m['ok'] else 'OVER THE GOAL'}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
