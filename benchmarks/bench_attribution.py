"""Time the attributions for one probe sequence, as the live saliency panel runs them.

    python benchmarks/bench_attribution.py [--T 100] [--H 128] [--steps 50] [--repeats 15]
                                           [--threads N]

Prints the median wall time (ms) per call for every cell, backend and input kind
(one-hot text with I=65 characters and O=65 classes, or a 1-feature series), after
one warm-up call (which also compiles numba kernels). A 30 Hz frame is 33 ms, a 60 Hz
one 16.7 ms. "cpu" repeats IG and no-params as process CPU time (ms, all threads): on
a machine shared with other jobs, wall time measures the queue, CPU time the work.
"model" is one bare forward + full backward (every parameter gradient) of the same
(steps + 2)-row batch that IG runs, as dense rows; "no-params" the same with
`Model.backward(params=False)`: the floor for IG through `Model`. IG of one-hot text
on the GRU/LSTM kernels takes the token path instead (scaled token ids, input gradient
at the hot positions only), so it can beat that floor. `--threads 1` runs the numba kernels on one thread (steadier figures on a
busy machine). Set OPENBLAS_NUM_THREADS=1 on shared machines (2-thread OpenBLAS stalls
there, see shared/NOTES.md).
"""

import argparse
import os
import time

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")

import numpy as np  # noqa: E402

from rnnviewer.engine import Model  # noqa: E402
from rnnviewer.engine import attribution as A  # noqa: E402
from rnnviewer.engine.kernels import get_cell  # noqa: E402
from rnnviewer.engine.kernels import numpy_cells  # noqa: E402


CPU_TIMES = []


def median_ms(fn, repeats):
    """Median wall time (ms); the median process CPU time goes to CPU_TIMES."""
    fn()  # warm-up (and numba compilation)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU_TIMES.append(1e3 * float(np.median(cpu)))
    return 1e3 * float(np.median(wall))


def probe(kind, T, rng):
    if kind == "text":
        x = np.zeros((1, T, 65), np.float32)
        x[0, np.arange(T), rng.integers(0, 65, T)] = 1.0
        return x, 65
    return rng.normal(size=(1, T, 1)).astype(np.float32), 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=100, help="sequence length (default 100)")
    ap.add_argument("--H", type=int, default=128, help="hidden units (default 128)")
    ap.add_argument("--steps", type=int, default=50, help="IG steps (default 50)")
    ap.add_argument("--repeats", type=int, default=15, help="timed calls (default 15)")
    ap.add_argument("--cells", default="rnn,gru,lstm", help="comma-separated cells")
    ap.add_argument("--backends", default="numba,numpy", help="comma-separated backends")
    ap.add_argument("--threads", type=int, default=0,
                    help="numba threads (default 0: numba's own default)")
    args = ap.parse_args()
    if args.threads:
        import numba

        numba.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"T={args.T} H={args.H} B=1 float32; IG steps={args.steps}; median of "
          f"{args.repeats} (ms)" + (f"; {args.threads} numba thread(s)" if args.threads else ""))
    print(f"{'cell':5} {'backend':13} {'input':6} {'IG':>8} {'model':>8} {'no-params':>9} "
          f"{'saliency':>9} {'occlusion':>10} {'IG loss':>8}   cpu IG, no-params")
    for cell in args.cells.split(","):
        for backend in args.backends.split(","):
            fwd = get_cell(cell, backend)[0]
            actual = "numpy" if fwd is numpy_cells.CELLS[cell][0] else backend
            if backend == "numba" and actual == "numpy":
                actual = "numpy(fallbk)"
            for kind in ("text", "series"):
                x, n_in = probe(kind, args.T, rng)
                O = 65 if kind == "text" else 1
                m = Model(cell, n_in=n_in, n_hidden=args.H, n_out=O, seed=0, backend=backend)
                loss = "xent" if kind == "text" else "mse"
                target = (rng.integers(0, O, (1, args.T)) if loss == "xent"
                          else rng.normal(size=(1, args.T, 1)).astype(np.float32))
                r = args.repeats
                ig = median_ms(lambda: A.integrated_gradients(m, x, -1, 0, steps=args.steps), r)
                # IG's rows as dense inputs: points on the path from the zero baseline to
                # x, then x and 0 (IG itself gives GRU/LSTM text scaled token ids)
                xs = x * np.linspace(0.0, 1.0, args.steps + 2, dtype=np.float32)[:, None, None]
                dy = np.zeros((len(xs), args.T, O), np.float32)
                dy[:, -1, 0] = 1.0
                bare = median_ms(lambda: m.backward(m.forward(xs), dy=dy), r)
                CPU_TIMES.pop()
                floor = median_ms(lambda: m.backward(m.forward(xs), dy=dy, params=False), r)
                sal = median_ms(lambda: A.saliency(m, x, -1, 0), r)
                occ = median_ms(lambda: A.occlusion(m, x, -1, 0), r)
                igl = median_ms(lambda: A.integrated_gradients(
                    m, x, None, "loss", steps=args.steps, target=target, loss=loss), r)
                print(f"{cell:5} {actual:13} {kind:6} {ig:8.2f} {bare:8.2f} {floor:9.2f} "
                      f"{sal:9.2f} {occ:10.2f} {igl:8.2f}   cpu {CPU_TIMES[0]:.2f} "
                      f"{CPU_TIMES[1]:.2f}", flush=True)
                CPU_TIMES.clear()


if __name__ == "__main__":
    main()
