"""One whole training step (forward + full BPTT + SGD update), float32: engine vs PyTorch vs numpy.

    python benchmarks/bench_step.py [--cell rnn|gru|lstm] [--repeats 5] [--min-time 0.5]
                                    [--configs 0,1,2,3] [--no-torch] [--no-compile]
                                    [--baseline DIR]

Every side runs in its own worker process (PyTorch's OpenMP and OpenBLAS threads
interfere when mixed, shared/NOTES.md) and all of them are measured interleaved: each
round runs every (config, worker) pair for about --min-time seconds, in rotating order,
and the table reports medians over the rounds. Workers:

- engine: `Model(cell, backend="numba")` + `SGD`, `loss_and_grads` + `step`, as the app
  trains; text configs (xent) feed integer token ids (the engine's one-hot path); best
  of 1 and 2 numba threads (NUMBA_NUM_THREADS; 1 runs the serial kernels), BLAS 1 thread.
- numpy: the same with `backend="numpy"` (engine/kernels/numpy_cells.py), dense one-hot x;
  best of 1 and 2 OpenBLAS threads.
- torch: `torch.nn.RNN/GRU/LSTM(batch_first=True)` + `torch.nn.Linear`, `torch.optim.SGD`,
  one-hot float x; best of 1 and 2 threads (torch.set_num_threads).
- ceiling: numpy float32 2048x2048 matmul GFLOP/s on 1 and 2 threads.
- before (with --baseline DIR): the engine again, imported from DIR (a copy of an older
  `rnnviewer` package: DIR/rnnviewer/...), interleaved with the rest, for before/after
  tables measured in the same conditions.

All sides start from the same weights and data; the first losses are checked to agree.
GFLOP/s counts the dense model FLOPs of a training step, the same for every side:
2*B*T*(2*G*H*I + 3*G*H*H + 3*H*O) (forward, weight and state gradients; no dL/dx), even
where the engine replaces the one-hot input matmuls with row lookups.
It also times the engine's first step per config in a fresh process with an empty
NUMBA_CACHE_DIR (cold: numba compiles) and again in a second process (cached).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CONFIGS = [  # I, H, O, T, B, loss
    (1, 32, 1, 50, 32, "mse"),
    (65, 128, 65, 64, 32, "xent"),
    (65, 128, 65, 64, 1, "xent"),
    (10, 512, 10, 50, 16, "mse"),
]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
LR = 1e-3


def step_flops(cell, I, H, O, T, B):
    G = GATES[cell]
    return 2 * B * T * (2 * G * H * I + 3 * G * H * H + 3 * H * O)


# ---------------------------------------------------------------- worker side
def _data(cfg, seed=1):
    import numpy as np

    I, H, O, T, B, loss = cfg
    rng = np.random.default_rng(seed)
    if loss == "xent":
        ids = rng.integers(0, I, (B, T))
        x = np.zeros((B, T, I), np.float32)
        np.put_along_axis(x, ids[..., None], 1.0, axis=-1)
        return ids, x, rng.integers(0, O, (B, T))
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    return None, x, rng.standard_normal((B, T, O)).astype(np.float32)


class EngineSide:
    def __init__(self, cell, cfg, params, backend):
        from rnnviewer.engine import SGD, Model

        I, H, O, T, B, self.loss = cfg
        self.model = Model(cell, I, H, O, seed=0, dtype="float32", backend=backend,
                           params=params)
        self.opt = SGD(self.model.params, LR)
        ids, x, self.target = _data(cfg)
        self.x = ids if (ids is not None and backend == "numba") else x

    def step(self):
        value, grads = self.model.loss_and_grads(self.x, self.target, self.loss)
        self.opt.step(grads)
        return value


class TorchSide:
    def __init__(self, cell, cfg, params):
        import torch

        I, H, O, T, B, self.loss = cfg
        cls = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
        self.rnn = cls(I, H, batch_first=True)
        self.head = torch.nn.Linear(H, O)
        with torch.no_grad():
            for ours, mod, theirs in (("W_xh", self.rnn, "weight_ih_l0"),
                                      ("W_hh", self.rnn, "weight_hh_l0"),
                                      ("b_xh", self.rnn, "bias_ih_l0"),
                                      ("b_hh", self.rnn, "bias_hh_l0"),
                                      ("W_hy", self.head, "weight"), ("b_y", self.head, "bias")):
                getattr(mod, theirs).copy_(torch.from_numpy(params[ours]))
        _, x, target = _data(cfg)
        self.x = torch.from_numpy(x)
        self.target = torch.from_numpy(target).reshape(-1) if self.loss == "xent" \
            else torch.from_numpy(target)
        self.opt = torch.optim.SGD(list(self.rnn.parameters()) + list(self.head.parameters()),
                                   lr=LR)
        self.fn = torch.nn.functional.cross_entropy if self.loss == "xent" \
            else torch.nn.functional.mse_loss
        self.O = O

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        out, _ = self.rnn(self.x)
        y = self.head(out)
        if self.loss == "xent":
            y = y.reshape(-1, self.O)
        value = self.fn(y, self.target)
        value.backward()
        self.opt.step()
        return value.item()


def _ceiling(min_time):
    import numpy as np

    a = np.random.default_rng(0).standard_normal((2048, 2048)).astype(np.float32)
    a @ a
    best, t_end = 0.0, time.perf_counter() + min_time
    while True:
        t0 = time.perf_counter()
        a @ a
        best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - t0) / 1e9)
        if time.perf_counter() > t_end:
            return best


def worker(kind, cell, params_file):
    """Serve JSON commands on stdin: setup, run <config>, ceiling, quit."""
    import numpy as np

    sides = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "quit":
            return
        if cmd["cmd"] == "ceiling":
            reply = {"gflops": _ceiling(cmd["min_time"])}
        elif cmd["cmd"] == "setup":
            t0 = time.perf_counter()
            first = {}
            with np.load(params_file) as f:
                stored = {k: f[k] for k in f.files}
            for k, cfg in enumerate(cmd["configs"]):
                params = {n.split("/", 1)[1]: v for n, v in stored.items()
                          if n.startswith(f"{k}/")}
                if kind == "torch":
                    import torch

                    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
                    sides[k] = TorchSide(cell, tuple(cfg), params)
                else:
                    sides[k] = EngineSide(cell, tuple(cfg), params, kind)
                first[k] = sides[k].step()
                sides[k].step()  # warm-up
            reply = {"setup_s": time.perf_counter() - t0, "first_loss": first}
            if kind == "numba":
                import rnnviewer
                from rnnviewer.engine.kernels import blas

                reply["blas"] = (f"{blas.BLAS}, {blas.BLAS_THREADS} thread(s); engine from "
                                 f"{os.path.dirname(os.path.dirname(rnnviewer.__file__))}")
        elif cmd["cmd"] == "run":
            side = sides[cmd["config"]]
            n, t0 = 0, time.perf_counter()
            c0 = time.process_time()
            while True:
                side.step()
                n += 1
                dt = time.perf_counter() - t0
                if dt >= cmd["min_time"] and n >= 3:
                    break
            reply = {"steps_per_s": n / dt, "cpu_per_step": (time.process_time() - c0) / n}
        print(json.dumps(reply), flush=True)


def first_steps(cell, configs):
    """Child process: import time and the first training step per config (compiles)."""
    t0 = time.perf_counter()
    import numpy as np

    from rnnviewer.engine import SGD, Model
    from rnnviewer.engine.kernels import get_cell

    get_cell(cell, "numba")  # imports the kernel module (numba, numpy's OpenBLAS binding)
    out = {"import_s": time.perf_counter() - t0, "first_step_s": []}
    for cfg in configs:
        I, H, O, T, B, loss = cfg
        model = Model(cell, I, H, O, seed=0, dtype="float32")
        ids, x, target = _data(tuple(cfg))
        t1 = time.perf_counter()
        value, grads = model.loss_and_grads(ids if ids is not None else x, target, loss)
        SGD(model.params, LR).step(grads)
        out["first_step_s"].append(time.perf_counter() - t1)
        assert np.isfinite(value)
    print(json.dumps(out), flush=True)


# ---------------------------------------------------------------- orchestrator
class Worker:
    def __init__(self, name, kind, cell, params_file, env):
        self.name, self.kind = name, kind
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", kind, "--cell", cell,
             "--params", params_file],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, **env})

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.name} died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.close()
        except OSError:
            pass
        self.proc.wait(timeout=60)


def _threads_env(n):
    n = str(n)
    return {"OPENBLAS_NUM_THREADS": n, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n,
            "BENCH_THREADS": n}


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _median(xs):
    xs = sorted(xs)
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else 0.5 * (xs[m - 1] + xs[m])


def _initial_params(cell, configs, path):
    """Every config's initial weights (the engine's seeded init), for all sides."""
    import numpy as np

    from rnnviewer.engine.model import Model

    arrays = {}
    for k, (I, H, O, T, B, loss) in enumerate(configs):
        m = Model(cell, I, H, O, seed=0, dtype="float32", backend="numpy")
        arrays.update({f"{k}/{n}": v for n, v in m.params.items()})
    np.savez(path, **arrays)


def compile_times(cell, configs):
    """First-step times in a fresh process with an empty numba cache, then cached."""
    res = {}
    with tempfile.TemporaryDirectory(prefix="rnnviewer-bench-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "cached"):
            out = subprocess.run([sys.executable, __file__, "--first-steps", "--cell", cell,
                                  "--configs-json", json.dumps(configs)],
                                 env=env, capture_output=True, text=True, check=True)
            res[label] = json.loads(out.stdout.strip().splitlines()[-1])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="rnn", choices=sorted(GATES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--configs", default=",".join(str(i) for i in range(len(CONFIGS))))
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-numpy", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip the cold/cached timing")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also time the engine imported from DIR (holding an older copy of "
                         "the rnnviewer package), interleaved: a before/after comparison")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--first-steps", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--configs-json", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.cell, args.params)
    if args.first_steps:
        return first_steps(args.cell, json.loads(args.configs_json))

    configs = [CONFIGS[int(i)] for i in args.configs.split(",")]
    os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "numba_cache"))
    print(f"bench_step: cell={args.cell} float32, {args.repeats} interleaved rounds of "
          f"~{args.min_time}s per (config, side); cpus={os.cpu_count()} ({_cpu_model()}); "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    tmp = tempfile.TemporaryDirectory(prefix="rnnviewer-bench-")
    params_file = os.path.join(tmp.name, "params.npz")
    _initial_params(args.cell, configs, params_file)
    specs = [("engine/1", "numba", {**_threads_env(1), "NUMBA_NUM_THREADS": "1"}),
             ("engine/2", "numba", {**_threads_env(1), "NUMBA_NUM_THREADS": "2"})]
    if args.baseline:
        base = {"PYTHONPATH": os.pathsep.join(
            [os.path.abspath(args.baseline)] + [p for p in [os.environ.get("PYTHONPATH")] if p])}
        specs += [("before/1", "numba", {**_threads_env(1), "NUMBA_NUM_THREADS": "1", **base}),
                  ("before/2", "numba", {**_threads_env(1), "NUMBA_NUM_THREADS": "2", **base})]
    if not args.no_numpy:
        specs += [("numpy/1", "numpy", _threads_env(1)), ("numpy/2", "numpy", _threads_env(2))]
    if not args.no_torch:
        specs += [("torch/1", "torch", _threads_env(1)), ("torch/2", "torch", _threads_env(2))]
    specs += [("ceiling/1", "ceiling", _threads_env(1)), ("ceiling/2", "ceiling", _threads_env(2))]
    workers = [Worker(name, kind, args.cell, params_file, env) for name, kind, env in specs]
    try:
        first = {}
        for w in workers:
            if w.kind != "ceiling":
                r = w.ask(cmd="setup", configs=configs)
                first[w.name] = r["first_loss"]
                print(f"  {w.name:9s} ready in {r['setup_s']:.1f}s"
                      + (f"; kernels call {r['blas']}" if "blas" in r else ""), flush=True)
        for k in range(len(configs)):
            losses = [float(first[n][str(k)]) for n in first]
            spread = (max(losses) - min(losses)) / max(abs(losses[0]), 1e-12)
            if spread > 1e-4:
                print(f"  WARNING config {k}: first losses disagree: {losses}")
        rates = {(w.name, k): [] for w in workers if w.kind != "ceiling"
                 for k in range(len(configs))}
        ceiling = {w.name: [] for w in workers if w.kind == "ceiling"}
        step_workers = [w for w in workers if w.kind != "ceiling"]
        ceil_workers = [w for w in workers if w.kind == "ceiling"]
        for r in range(args.repeats):
            for k in range(len(configs)):
                order = step_workers[r % len(step_workers):] + step_workers[:r % len(step_workers)]
                for w in order:
                    rates[w.name, k].append(w.ask(cmd="run", config=k, min_time=args.min_time)
                                            ["steps_per_s"])
            for w in ceil_workers:
                ceiling[w.name].append(w.ask(cmd="ceiling", min_time=args.min_time)["gflops"])
            print(f"  round {r + 1}/{args.repeats} done", flush=True)
    finally:
        for w in workers:
            w.close()
        tmp.cleanup()

    print(f"  load average after the rounds: {os.getloadavg()[0]:.1f} (1 min), "
          f"{os.getloadavg()[1]:.1f} (5 min)", flush=True)
    ceil = {n: _median(v) for n, v in ceiling.items()}
    top = max(ceil.values())
    med = {key: _median(v) for key, v in rates.items()}

    def best(side, k):
        """(steps/s, threads) of the fastest worker of `side` on config k, or None."""
        names = [n for n, _, _ in specs if n.startswith(side + "/")]
        if not names:
            return None
        name = max(names, key=lambda n: med[n, k])
        return med[name, k], name.split("/")[1]

    print()
    print(f"float32 matmul ceiling (numpy 2048^2): {ceil['ceiling/1']:.0f} GFLOP/s on 1 thread, "
          f"{ceil['ceiling/2']:.0f} on 2")
    print()
    print(f"cell={args.cell}: steps/s (median of {args.repeats} interleaved rounds), "
          "GFLOP/s in brackets")
    head = ["I,H,O,T,B loss", "engine best", "PyTorch best", "numpy best", "engine/PyTorch",
            "engine/numpy", "engine % of ceiling"]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for k, cfg in enumerate(configs):
        I, H, O, T, B, loss = cfg
        gf = step_flops(args.cell, I, H, O, T, B) / 1e9
        eng, which = best("engine", k)
        cells = [f"{I},{H},{O},{T},{B} {loss}", f"{eng:.0f} ({eng * gf:.0f}) [{which}t]"]
        ratios = []
        for side in ("torch", "numpy"):
            other = best(side, k)
            if other is not None:
                rate, which = other
                cells.append(f"{rate:.0f} ({rate * gf:.0f}) [{which}t]")
                ratios.append(f"{eng / rate:.1f}x")
            else:
                cells.append("-")
                ratios.append("-")
        cells += ratios + [f"{100 * eng * gf / top:.0f}%"]
        print("| " + " | ".join(cells) + " |")
    if args.baseline:
        print()
        print(f"before (engine from {args.baseline}) / after, same rounds: steps/s, GFLOP/s in "
              "brackets")
        head = ["I,H,O,T,B loss", "before best", "after best", "after/before",
                "before % of ceiling", "after % of ceiling"]
        print("| " + " | ".join(head) + " |")
        print("|" + " --- |" * len(head))
        for k, cfg in enumerate(configs):
            I, H, O, T, B, loss = cfg
            gf = step_flops(args.cell, I, H, O, T, B) / 1e9
            (b, bt), (a, at) = best("before", k), best("engine", k)
            print(f"| {I},{H},{O},{T},{B} {loss} | {b:.0f} ({b * gf:.0f}) [{bt}t] | "
                  f"{a:.0f} ({a * gf:.0f}) [{at}t] | {a / b:.2f}x | {100 * b * gf / top:.0f}% | "
                  f"{100 * a * gf / top:.0f}% |")
    print()
    print("medians per side (steps/s):")
    print("| config | " + " | ".join(w.name for w in step_workers) + " |")
    print("|" + " --- |" * (len(step_workers) + 1))
    for k, cfg in enumerate(configs):
        print(f"| {','.join(str(v) for v in cfg[:5])} | "
              + " | ".join(f"{med[w.name, k]:.0f}" for w in step_workers) + " |")
    print()
    print("raw steps/s per round:")
    for (name, k), v in rates.items():
        print(f"  config {k} {name:9s} " + " ".join(f"{x:.0f}" for x in v))
    if not args.no_compile:
        ct = compile_times(args.cell, configs)
        print()
        print("engine first training step per config, fresh process (s):")
        for label in ("cold", "cached"):
            c = ct[label]
            steps = " ".join(f"{t:.2f}" for t in c["first_step_s"])
            print(f"  {label:6s} import {c['import_s']:.2f}, first steps {steps}, "
                  f"total {c['import_s'] + sum(c['first_step_s']):.2f}")


if __name__ == "__main__":
    main()
