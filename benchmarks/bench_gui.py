"""GUI responsiveness while training runs flat out (issue 5).

Measures, with every registered panel open and visible (floating docks, offscreen):
  - event-loop latency: a 10 ms QTimer probe; lateness of each tick (goal: p99 < 50 ms)
  - panel frames per second: redraws of each panel per second (goal: >= 20). A panel
    whose picture comes from a throttled computation (spectrum, histograms: at most every
    max(min_interval, 10 x its cost)) draws only when that has new data; its redraw()
    calls that drew nothing (returned False) are not frames. Such panels are listed
    separately ("throttled"), with their frame rate, and left out of fps_min.
  - training throughput with the window open relative to headless (goal: >= 80%)
Headless and windowed runs alternate in one process (the machines are noisy, NOTES.md);
medians are reported.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py --hidden 128 --seq-len 100
"""

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="sine")
    p.add_argument("--cell", default="rnn", choices=("rnn", "gru", "lstm"))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seconds", type=float, default=8.0, help="length of each measured run")
    p.add_argument("--repeats", type=int, default=2, help="headless/windowed pairs")
    p.add_argument("--layout", choices=("floating", "default", "none"), default="floating",
                   help="floating: every panel in its own visible window (all panels open); "
                        "default: the window's own layout (tabbed panels are not drawn); "
                        "none: every panel closed (the cost of the window itself)")
    p.add_argument("--switch-interval", type=float, default=None,
                   help="override sys.setswitchinterval (seconds) for an experiment")
    p.add_argument("--budget", type=float, default=None,
                   help="override the redraw scheduler's GUI-thread budget (share of a core; "
                        "see ui/panels/_schedule.py) for an experiment")
    p.add_argument("--train-threads", type=int, default=None,
                   help="numba threads of the window's training worker (default: numba's, "
                        "all cores); headless always uses the default")
    p.add_argument("--in-process", action="store_true",
                   help="train in a thread of the window's process, as before the training "
                        "process (ui/worker.py), for comparison")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--profile", help="cProfile the GUI thread during the windowed runs and "
                                     "write the 40 costliest functions (cumulative) here")
    return p.parse_args()


def headless(config, seconds):
    """(steps/s, cores used) of a TrainingSession in a plain thread, no snapshots. The
    cores: this process's CPU time over wall time (the window is idle meanwhile); below
    the machine's count, the training's serial parts leave a core idle part of each step."""
    from rnnviewer.training.session import TrainingSession
    s = TrainingSession(config, snapshot_hz=0)
    s.compile()
    s.run(max_steps=5)
    stop = threading.Event()
    result = {}

    def body():
        t0, n0, c0 = time.perf_counter(), s.step, time.process_time()
        s.run(stop_event=stop)
        dt = time.perf_counter() - t0
        result["rate"] = (s.step - n0) / dt
        result["cores"] = (time.process_time() - c0) / dt
    t = threading.Thread(target=body)
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return result["rate"], result["cores"]


class Probe:
    """A QTimer that records how late each tick arrives."""

    def __init__(self, interval_ms=10):
        from PySide6.QtCore import QTimer
        self.interval = interval_ms / 1000.0
        self.late = []
        self.last = None
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.tick)

    def tick(self):
        now = time.perf_counter()
        if self.last is not None:
            self.late.append(max(0.0, now - self.last - self.interval))
        self.last = now

    def start(self):
        self.last = None
        self.late = []
        self.timer.start()

    def stop(self):
        self.timer.stop()


def _cpu_seconds(stat_path):
    with open(stat_path) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


def thread_cpu(child_pid=None):
    """name -> CPU seconds, from /proc (Linux; {} elsewhere): "gui" the GUI thread,
    "worker" the training worker's QThread (Qt names OS threads after their objectName;
    it relays the training process, or trains itself with --in-process), "training_pool"
    the numba workers it started in-process (threads inherit their creator's name),
    "other" every other thread of this process, "training_process" the whole training
    process (child_pid)."""
    out = {"gui": 0.0, "worker": 0.0, "training_pool": 0.0, "other": 0.0}
    try:
        tids = sorted(os.listdir("/proc/self/task"), key=int)
    except OSError:
        return {}
    seen_worker = False
    for tid in tids:
        try:
            cpu = _cpu_seconds(f"/proc/self/task/{tid}/stat")
            with open(f"/proc/self/task/{tid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if int(tid) == os.getpid():
            key = "gui"
        elif comm.startswith("rnnviewer-trai"):
            key = "training_pool" if seen_worker else "worker"
            seen_worker = True
        else:
            key = "other"
        out[key] += cpu
    if child_pid:
        try:
            out["training_process"] = _cpu_seconds(f"/proc/{child_pid}/stat")
        except OSError:
            pass
    return out


def run_loop(seconds):
    """Run the Qt event loop for `seconds`, as the application does (app.exec): it sleeps
    in the event dispatcher between events instead of polling."""
    from PySide6.QtCore import QEventLoop, QTimer
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def windowed(win, probe, seconds, profiler=None):
    """Run the window's training for `seconds`; latency, per-panel fps, steps/s, and what
    explains them: snapshots/s reaching the window, the CPU share of each thread."""
    from rnnviewer.ui.panels import scheduler
    from rnnviewer.ui.runner import wait_until
    win.worker.set_running(True)
    wait_until(lambda: win.running and win.snapshot is not None and win.snapshot.step > 5, 60)
    run_loop(0.5)                                       # settle
    frames0 = {n: p.frames for n, p in win.panels.items()}
    skipped0 = {n: getattr(p, "skipped", 0) for n, p in win.panels.items()}
    pid = win.worker.child_pid
    step0, t0 = win.snapshot.step, time.perf_counter()
    serial0, cpu0 = win.snapshot.serial, thread_cpu(pid)
    probe.start()
    if profiler is not None:
        profiler.enable()
    run_loop(seconds)
    if profiler is not None:
        profiler.disable()
    probe.stop()
    dt = time.perf_counter() - t0
    steps = win.snapshot.step - step0       # the newest snapshot: at most ~40 ms behind
    cpu1 = thread_cpu(pid)
    snaps = (win.snapshot.serial - serial0) / dt
    fps = {n: (p.frames - frames0[n]) / dt for n, p in win.panels.items()}
    throttled = sorted(n for n, p in win.panels.items()
                       if getattr(p, "skipped", 0) > skipped0[n])
    diag = {"snapshots_per_s": snaps,
            "pace": scheduler().pace, "gui_busy": scheduler().busy,
            "budget": getattr(scheduler(), "budget", math.nan),
            "cpu_share": {k: (cpu1[k] - cpu0[k]) / dt for k in cpu1 if k in cpu0}}
    win.worker.set_running(False)
    wait_until(lambda: not win.running, 10)
    late = sorted(probe.late)
    pct = lambda q: 1000 * late[min(len(late) - 1, int(q * len(late)))]  # noqa: E731
    return {"steps_per_s": steps / dt, "latency_p50_ms": pct(0.50), "latency_p99_ms": pct(0.99),
            "latency_max_ms": 1000 * late[-1], "ticks": len(late), "fps": fps,
            "throttled": throttled, **diag}


def main():
    args = parse()
    from rnnviewer.app import setup_numba_cache
    setup_numba_cache()
    from rnnviewer.training.session import SessionConfig
    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.runner import make_app, wait_until
    config = SessionConfig(task=args.task, cell=args.cell, hidden=args.hidden,
                           seq_len=args.seq_len, batch=args.batch)
    if args.in_process:
        os.environ["RNNVIEWER_TRAIN_IN_PROCESS"] = "1"
    app = make_app()
    win = MainWindow(config, interactive=False, restore_settings=False)
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.budget:
        from rnnviewer.ui.panels import scheduler
        scheduler().fixed_budget = args.budget
    win.resize(1400, 900)
    win.show()
    if args.layout == "floating":
        for dock in win.docks.values():                 # every panel open and visible
            dock.setFloating(True)
            dock.resize(640, 420)
            dock.show()
    elif args.layout == "none":
        for dock in win.docks.values():
            dock.hide()
    win.start()
    if args.train_threads:
        win.worker.set_train_threads(args.train_threads)
    if not wait_until(lambda: win.snapshot is not None or win.errors, 600):
        sys.exit("timed out waiting for the kernels")
    if win.errors:
        sys.exit(win.errors[0][0])
    probe = Probe()
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile(time.thread_time)   # CPU time: GIL waits do not count
    runs = {"headless": [], "headless_cores": [], "window": []}
    for _ in range(args.repeats):
        rate, cores = headless(config, args.seconds)
        runs["headless"].append(rate)
        runs["headless_cores"].append(cores)
        runs["window"].append(windowed(win, probe, args.seconds, profiler))
    win.close()
    med = statistics.median
    head = med(runs["headless"])
    w = runs["window"]
    shown = [n for n, p in win.panels.items() if p.frames or getattr(p, "skipped", 0)]
    fps = {n: med(r["fps"][n] for r in w) for n in shown}
    throttled = sorted({n for r in w for n in r["throttled"]})
    live = {n: f for n, f in fps.items() if n not in throttled}
    out = {"config": config.to_dict(), "panels": len(shown), "layout": args.layout,
           "load_average": os.getloadavg(),
           "headless_steps_per_s": head,
           "headless_cores": med(runs["headless_cores"]),
           "window_steps_per_s": med(r["steps_per_s"] for r in w),
           "latency_p50_ms": med(r["latency_p50_ms"] for r in w),
           "latency_p99_ms": med(r["latency_p99_ms"] for r in w),
           "latency_max_ms": max(r["latency_max_ms"] for r in w),
           "fps_min": min(live.values(), default=math.nan),
           "fps_median": med(live.values()) if live else math.nan, "fps": fps,
           "throttled_panels": throttled,
           "runs": runs}
    out["throughput_ratio"] = out["window_steps_per_s"] / head
    out["switch_interval"] = sys.getswitchinterval()
    from rnnviewer.ui.panels import scheduler
    out["budget"] = getattr(scheduler(), "fixed_budget", None) or \
        getattr(scheduler(), "BUSY_BUDGET", None)
    out["train_threads"] = args.train_threads
    out["in_process"] = args.in_process
    print(f"{args.cell} H={args.hidden} T={args.seq_len} B={args.batch}, {len(shown)} panels "
          f"drawn ({args.layout} layout), {args.repeats}x{args.seconds:g} s, medians; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores:")
    print(f"  training  headless {head:8.1f} steps/s   window {out['window_steps_per_s']:8.1f} "
          f"steps/s   ratio {100 * out['throughput_ratio']:.0f}%  (goal >= 80%)")
    window_cores = med(r["cpu_share"].get("training_process", math.nan) for r in w)
    print(f"  cores     headless training {out['headless_cores']:.2f}   window: training "
          f"process {window_cores:.2f}, GUI thread "
          f"{med(r['cpu_share'].get('gui', math.nan) for r in w):.2f}")
    print(f"  latency   p50 {out['latency_p50_ms']:.1f} ms   p99 {out['latency_p99_ms']:.1f} ms"
          f"   max {out['latency_max_ms']:.1f} ms  (goal p99 < 50 ms)")
    print(f"  panel fps min {out['fps_min']:.1f}   median {out['fps_median']:.1f}  (goal >= 20; "
          f"throttled panels left out)")
    last = w[-1]
    print(f"  snapshots {med(r['snapshots_per_s'] for r in w):.1f}/s, redraw pace "
          f"x{last['pace']:.1f} (budget "
          f"{last['budget']:.2f}), GUI busy "
          f"{last['gui_busy']:.2f}; CPU share per thread: " + ", ".join(
              f"{k} {med(r['cpu_share'].get(k, 0) for r in w):.2f}" for k in last["cpu_share"]))
    for n, f in sorted(fps.items(), key=lambda kv: kv[1]):
        note = "  (throttled computation: draws when it has new data)" if n in throttled else ""
        print(f"    {n:20s} {f:5.1f} fps{note}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    if profiler is not None:
        import pstats
        with open(args.profile, "w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("cumulative").print_stats(40)
            pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(40)
    from rnnviewer.ui.runner import finish
    finish(0)


if __name__ == "__main__":
    main()
