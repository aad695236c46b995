"""What one frame of each panel costs in the GUI thread: redraw and paint, offscreen.

Trains a few steps in the window (every panel floating and visible), pauses, then
makes one training step at a time and, for each new snapshot, draws every panel in turn
and measures the GUI thread's CPU time (time.thread_time: other processes on a busy
machine do not count), as medians:
  redraw  Panel.redraw (updating the items)
  paint   the paint events that the redraw causes (what Qt repaints afterwards)
These add up to the panel's share of the GUI thread per frame (bench_gui.py measures
the live window).

    QT_QPA_PLATFORM=offscreen python benchmarks/panel_cost.py --cell lstm --task text
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="sine")
    p.add_argument("--cell", default="rnn", choices=("rnn", "gru", "lstm"))
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=100)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--frames", type=int, default=15, help="frames measured per panel")
    p.add_argument("--panels", nargs="*", help="only these panels (object names)")
    p.add_argument("--layout", choices=("floating", "default"), default="floating",
                   help="floating: every panel in its own 640x420 window; default: the "
                        "window's own layout (only the panels in front are measured)")
    p.add_argument("--profile", help="cProfile the measured frames, write the top here")
    p.add_argument("--training", action="store_true",
                   help="measure while training runs flat out (frames cost more then: the "
                        "training threads compete for the cores and the caches)")
    return p.parse_args()


def flush_paints(app):
    """Process the pending events (the scene's deferred updates, then the paint events)."""
    for _ in range(3):
        app.processEvents()


def main():
    args = parse()
    from rnnviewer.app import setup_numba_cache
    setup_numba_cache()
    from rnnviewer.training.session import SessionConfig
    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.panels import scheduler
    from rnnviewer.ui.runner import finish, make_app, wait_until
    config = SessionConfig(task=args.task, cell=args.cell, hidden=args.hidden,
                           seq_len=args.seq_len, batch=args.batch)
    app = make_app()
    win = MainWindow(config, interactive=False, restore_settings=False)
    win.resize(1400, 900)
    win.show()
    if args.layout == "floating":
        for dock in win.docks.values():
            dock.setFloating(True)
            dock.resize(640, 420)
            dock.show()
    win.start()
    if not wait_until(lambda: win.snapshot is not None or win.errors, 600):
        raise SystemExit("timed out waiting for the kernels")
    win.worker.set_running(True)
    wait_until(lambda: win.snapshot is not None and win.snapshot.step > 60, 120)
    wait_until(lambda: False, 3.0)        # the analyses of the visible panels come in
    win.worker.set_running(False)
    wait_until(lambda: not win.running, 10)
    wait_until(lambda: False, 1.0)
    snap = win.snapshot
    print(f"{args.cell} {args.task} H={args.hidden} T={args.seq_len}, step {snap.step}; "
          f"analyses in the snapshot: {', '.join(sorted(snap.extra)) or 'none'}")
    profiler = None
    if args.profile:
        import cProfile
        profiler = cProfile.Profile()
    scheduler().panels.clear()            # this script draws the panels itself
    names = [n for n, p in win.panels.items() if (not args.panels or n in args.panels)
             and p.is_shown()]
    times = {n: ([], []) for n in names}
    if args.training:
        win.worker.set_running(True)
    for _ in range(args.frames):
        serial = win.snapshot.serial      # one real training step: a new snapshot
        if not args.training:
            win.worker.step(1)
        wait_until(lambda: win.snapshot.serial != serial, 30)
        if not args.training:
            time.sleep(0.02)              # the worker is idle again
        for name in names:
            panel = win.panels[name]
            flush_paints(app)
            if profiler is not None:
                profiler.enable()
            t0 = time.thread_time()
            panel.redraw_now()
            t1 = time.thread_time()
            flush_paints(app)
            t2 = time.thread_time()
            if profiler is not None:
                profiler.disable()
            times[name][0].append(t1 - t0)
            times[name][1].append(t2 - t1)
    med = statistics.median
    rows = [(1e3 * med(r), 1e3 * med(q), n) for n, (r, q) in times.items()]
    total = 0.0
    for r, q, n in sorted(rows, key=lambda x: -(x[0] + x[1])):
        print(f"  {n:20s} redraw {r:6.2f} ms   paint {q:6.2f} ms   frame {r + q:6.2f} ms")
        total += r + q
    print(f"  {'all':20s} {total:.1f} ms per frame of every panel")
    if profiler is not None:
        import pstats
        with open(args.profile, "w") as f:
            pstats.Stats(profiler, stream=f).sort_stats("tottime").print_stats(50)
            pstats.Stats(profiler, stream=f).sort_stats("cumulative").print_stats(50)
    win.close()
    finish(0)


if __name__ == "__main__":
    main()
