"""`rnnviewer train`: train without a window, show progress on stderr, save a session file.

Exit codes: 0 done, 2 bad arguments or input (one line naming the problem, nothing
written), 3 training diverged (the last finite state is saved if --save was given),
130 interrupted (Ctrl-C; the state so far is saved if --save was given).

    python -m rnnviewer.training.headless --task adding --cell lstm --steps 2000 --save a.npz
    python -m rnnviewer.training.headless --example vanishing-lstm --save a.npz
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from rnnviewer.engine.tasks import TASKS, make_task
from rnnviewer.errors import DivergenceError, RnnviewerError
from rnnviewer.training.session import CELLS, SessionConfig, TrainingSession
from rnnviewer.training.examples import BY_NAME as EXAMPLES_BY_NAME

PROG = "rnnviewer train"
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130

# option dest -> (task constructor keyword, tasks that take it)
TASK_OPTIONS = {
    "waves": ("waves", {"sine"}), "noise": ("noise", {"sine"}),
    "length": ("length", {"copy"}), "symbols": ("symbols", {"copy"}),
    "delay": ("delay", {"copy"}),
    "bits": ("bits", {"flipflop"}), "pulse_prob": ("p", {"flipflop"}),
    "modulus": ("modulus", {"parity"}),
    "text": ("path", {"text"}), "corpus": ("corpus", {"text"}),
    "max_chars": ("max_chars", {"text"}),
    "csv": ("path", {"csv"}), "inputs": ("inputs", {"csv"}), "targets": ("targets", {"csv"}),
    "normalize": ("normalize", {"csv"}), "horizon": ("horizon", {"csv"}),
    "header": ("header", {"csv"}), "val_fraction": ("val_fraction", {"text", "csv"}),
}


class UsageError(Exception):
    """A bad command line (argparse's error, raised instead of exiting)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Train a recurrent network without the window and "
                "save a session file the app opens (and rnnviewer.engine.load reads).",
                epilog="Exit codes: 0 done, 2 bad arguments or input, 3 training diverged.")
    g = p.add_argument_group("task")
    g.add_argument("--example", metavar="NAME", choices=list(EXAMPLES_BY_NAME),
                   help="start from a guided example's settings (flags given as well "
                        "override them; --steps defaults to the example's): "
                        + ", ".join(EXAMPLES_BY_NAME))
    g.add_argument("--task", choices=list(TASKS),
                   help="what to learn (default: text with --text, csv with --csv)")
    g.add_argument("--seq-len", type=int, help="timesteps per sequence (default: 50; copy: "
                   "2*length+delay+1)")
    g.add_argument("--text", metavar="FILE", help="UTF-8 text file for the text task")
    g.add_argument("--corpus", choices=["python", "prose"],
                   help="bundled corpus for the text task without --text (default: python)")
    g.add_argument("--max-chars", type=int, metavar="N", help="text: use the first N characters")
    g.add_argument("--csv", metavar="FILE", help="CSV file for the csv task")
    g.add_argument("--inputs", metavar="COLS",
                   help="csv: input columns, names or 0-based numbers, comma-separated "
                        "(default: every numeric one)")
    g.add_argument("--targets", metavar="COLS", help="csv: target columns (default: the inputs)")
    g.add_argument("--normalize", choices=["zscore", "minmax", "none"],
                   help="csv: column scaling from the training rows (default: zscore)")
    g.add_argument("--horizon", type=int, help="csv: forecast this many rows ahead (default: 1)")
    g.add_argument("--header", action=argparse.BooleanOptionalAction,
                   help="csv: the first row is (not) a header (default: detect)")
    g.add_argument("--val-fraction", type=float,
                   help="text/csv: share of the file's tail held out for validation")
    g.add_argument("--waves", type=int, help="sine: sines per sequence (default: 3)")
    g.add_argument("--noise", type=float, help="sine: input noise std (default: 0)")
    g.add_argument("--length", type=int, help="copy: symbols to memorise (default: 5)")
    g.add_argument("--symbols", type=int, help="copy: alphabet size (default: 8)")
    g.add_argument("--delay", type=int, help="copy: blank steps before recall "
                   "(default: from --seq-len, else 10)")
    g.add_argument("--bits", type=int, help="flipflop: channels (default: 3)")
    g.add_argument("--pulse-prob", type=float, help="flipflop: pulse probability per step "
                   "(default: 0.05)")
    g.add_argument("--modulus", type=int, help="parity: count ones modulo this (default: 2)")

    g = p.add_argument_group("model and training")
    g.add_argument("--cell", choices=CELLS, default="rnn", help="recurrent cell (default: rnn)")
    g.add_argument("--hidden", type=int, default=64, help="hidden units (default: 64)")
    g.add_argument("--steps", type=int, default=1000, help="training steps (default: 1000)")
    g.add_argument("--lr", type=float, default=0.01, help="learning rate (default: 0.01)")
    g.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="optimizer (default: adam)")
    g.add_argument("--batch", type=int, default=32, help="sequences per step (default: 32)")
    g.add_argument("--clip", type=float, default=1.0,
                   help="gradient-norm clip, 0 = off (default: 1.0)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of model, data and task (default: 0)")
    g.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    g.add_argument("--val-every", type=int, default=50,
                   help="steps between validation losses (default: 50)")

    g = p.add_argument_group("output")
    g.add_argument("--save", metavar="FILE", help="session file to write (.npz)")
    g.add_argument("--sample", type=int, default=0, metavar="N",
                   help="text: print N generated characters at the end")
    g.add_argument("--sample-every", type=int, default=0, metavar="STEPS",
                   help="text: while training, print a sample (of --sample characters, "
                        "default 200) every STEPS steps")
    g.add_argument("--prime", default="", help="text: start the sample with this")
    g.add_argument("--temperature", type=float, default=0.8, help="text: sampling temperature")
    g.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    return p


# SessionConfig field -> option dest, for the settings an example sets
_EXAMPLE_FIELDS = {"task": "task", "seq_len": "seq_len", "cell": "cell", "hidden": "hidden",
                   "batch": "batch", "optimizer": "optimizer", "lr": "lr", "clip": "clip",
                   "seed": "seed", "dtype": "dtype", "val_every": "val_every"}


def explicit_dests(argv):
    """The option dests given on the command line `argv` (not left at their defaults)."""
    probe = build_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(argv)))


def apply_example(args, explicit):
    """Fill `args` from `args.example`'s settings, except the dests in `explicit`."""
    ex = EXAMPLES_BY_NAME[args.example]
    for fld, dest in _EXAMPLE_FIELDS.items():
        if fld in ex.config and dest not in explicit:
            setattr(args, dest, ex.config[fld])
    if "steps" not in explicit:
        args.steps = ex.steps
    if args.task == ex.config["task"]:   # task options only for the example's own task
        by_key = {key: dest for dest, (key, tasks) in TASK_OPTIONS.items() if args.task in tasks}
        for key, value in dict(ex.config.get("task_options", {})).items():
            dest = by_key.get(key)
            if dest == "corpus" and args.text:   # the user's own text instead
                continue
            if dest is not None and dest not in explicit:
                setattr(args, dest, value)
    return args


def task_from_args(args):
    """(name, task) from the parsed arguments; UsageError/ConfigError/DataError if impossible."""
    name = args.task or ("text" if args.text else "csv" if args.csv else None)
    if name is None:
        raise UsageError(f"--task is required (one of {', '.join(TASKS)})")
    opts = {}
    for dest, (key, tasks) in TASK_OPTIONS.items():
        value = getattr(args, dest)
        if value is None:
            continue
        if name not in tasks:
            flag = "--" + dest.replace("_", "-")
            raise UsageError(f"{flag} applies to the {' and '.join(sorted(tasks))} task"
                             f"{'s' if len(tasks) > 1 else ''} only, not to {name}")
        opts[key] = value
    if name == "csv" and "path" not in opts:
        raise UsageError("the csv task needs --csv FILE")
    if name == "text" and args.text and args.corpus:
        raise UsageError("give --text FILE or --corpus NAME, not both")
    return name, make_task(name, seq_len=args.seq_len, seed=args.seed, dtype=args.dtype, **opts)


def check_save_path(path, inputs=()) -> Path:
    """The --save path, if a file can be written there (and is none of the `inputs` files);
    UsageError otherwise."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"--save {path}: is a folder")
    for other in inputs:
        if other and p.exists() and Path(other).exists() and p.samefile(other):
            raise UsageError(f"--save {path}: is the input file {other}; choose another name")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"--save {path}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--save {path}: cannot write in folder {parent}")
    return p


def check_numbers(args):
    for flag, value, ok in (("--steps", args.steps, args.steps >= 0),
                            ("--sample", args.sample, args.sample >= 0),
                            ("--sample-every", args.sample_every, args.sample_every >= 0),
                            ("--temperature", args.temperature,
                             math.isfinite(args.temperature) and args.temperature >= 0)):
        if not ok:
            raise UsageError(f"{flag} must be >= 0, got {value}")


class Progress:
    """A one-line progress bar on a terminal, or a line now and then when redirected."""

    def __init__(self, total, stream, enabled=True, bpc=False):
        self.total, self.stream, self.enabled, self.bpc = total, stream, enabled, bpc
        self.tty = enabled and hasattr(stream, "isatty") and stream.isatty()
        self.t0 = self.last = time.monotonic()
        self.step0 = 0
        self.printed = None  # step of the last line written (redirected output)
        self.width = 0       # length of the line on screen (a terminal)

    def start(self, step0):
        self.t0 = self.last = time.monotonic()
        self.step0 = step0

    def rate(self, step):
        dt = time.monotonic() - self.t0
        return (step - self.step0) / dt if dt > 0 else 0.0

    def line(self, step, loss, val):
        done = step - self.step0
        frac = done / self.total if self.total else 1.0
        rate = self.rate(step)
        eta = (self.total - done) / rate if rate > 0 else math.nan
        bar = "#" * int(24 * frac) + "." * (24 - int(24 * frac))
        val_s = f"{val:.4g}" if math.isfinite(val) else "-"
        if self.bpc:   # cross-entropy of characters: also in bits per character
            loss_s = f"{loss:.4g} ({loss / math.log(2):.3g} bpc)"
            val_s += f" ({val / math.log(2):.3g} bpc)" if math.isfinite(val) else ""
        else:
            loss_s = f"{loss:.4g}"
        eta_s = f"  ETA {eta:.0f}s" if math.isfinite(eta) and done < self.total else ""
        return (f"step {step:>{len(str(self.step0 + self.total))}}/{self.step0 + self.total} "
                f"[{bar}] {100 * frac:3.0f}%  loss {loss_s}  val {val_s}  "
                f"{rate:.0f} steps/s{eta_s}")

    def break_line(self):
        """End the bar's line on a terminal, so that other output starts on a line of its own."""
        if self.tty and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0

    def update(self, step, loss, val, validated=False, final=False):
        if not self.enabled:
            return
        now = time.monotonic()
        if self.tty:
            if final or now - self.last >= 0.1:
                text = self.line(step, loss, val)
                pad = " " * max(self.width - len(text), 0)   # rub out a longer last line
                self.stream.write("\r" + text + pad + ("\n" if final else ""))
                self.stream.flush()
                self.last, self.width = now, 0 if final else len(text)
        elif (final and step != self.printed) or (validated and now - self.last >= 1.0):
            self.stream.write(self.line(step, loss, val) + "\n")
            self.stream.flush()
            self.last, self.printed = now, step


def _describe(metrics) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())


def train(args, stderr) -> int:
    """Run the training described by parsed `args`; returns the exit code."""
    def say(msg):
        if not args.quiet:
            print(f"{PROG}: {msg}", file=stderr, flush=True)

    check_numbers(args)
    save = check_save_path(args.save, (args.text, args.csv)) if args.save else None
    name, task = task_from_args(args)
    if (args.sample or args.prime or args.sample_every) and name != "text":
        raise UsageError("--sample, --sample-every and --prime apply to the text task only")
    task_options = {k: v for k, v in task.config.items() if k not in ("name", "seq_len")}
    config = SessionConfig(task=name, task_options=task_options, seq_len=task.seq_len,
                           cell=args.cell, hidden=args.hidden, batch=args.batch,
                           optimizer=args.optimizer, lr=args.lr, clip=args.clip,
                           seed=args.seed, dtype=args.dtype, val_every=args.val_every)
    session = TrainingSession(config, task=task, snapshot_hz=0)
    m = session.model
    say(f"{name} ({task.n_in} in, {task.n_out} out, seq_len {task.seq_len}), {m.cell} "
        f"H={m.n_hidden}, {args.optimizer} lr {args.lr:g}, batch {args.batch}, "
        f"{args.steps} steps")
    t = session.compile()
    if t > 1.0:
        say(f"compiled kernels in {t:.1f} s")

    stop = threading.Event()
    old_handler = None
    if threading.current_thread() is threading.main_thread():
        old_handler = signal.signal(signal.SIGINT, lambda *_: stop.set())
    progress = Progress(args.steps, stderr, enabled=not args.quiet, bpc=name == "text")
    progress.start(session.step)
    sampler = None
    if args.sample_every:
        sample_rng = np.random.default_rng([args.seed, 9])   # never the training stream

        def sampler(step):
            text = task.sample(m, args.prime, args.sample or 200, args.temperature, sample_rng)
            progress.break_line()
            print(f"--- sample at step {step} (temperature {args.temperature:g}) ---\n"
                  f"{args.prime}{text}", flush=True)
    try:
        diverged = _loop(session, args.steps, stop, progress, sampler, args.sample_every)
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    if session.step and session.step % config.val_every:
        session.validate()  # the history ends with a validation loss
    progress.update(session.step, session.last_loss, session.last_val_loss, final=True)

    if diverged is not None:
        return _diverged(session, diverged, save, stderr)
    metrics = task.evaluate(m, n_batches=4, batch_size=args.batch)
    rate = progress.rate(session.step)
    say(f"{'stopped' if stop.is_set() else 'done'} at step {session.step} ({rate:.0f} steps/s); "
        f"on {4 * args.batch} validation sequences: {_describe(metrics)}")
    if save is not None:
        _save(session, save)
        say(f"saved {save}")
    else:
        say("nothing saved (give --save FILE to keep the trained network)")
    if args.sample:
        text = task.sample(m, args.prime, args.sample, args.temperature,
                           np.random.default_rng(args.seed))
        print(args.prime + text)
    return EXIT_INTERRUPTED if stop.is_set() else EXIT_OK


def _loop(session, steps, stop, progress, sampler=None, sample_every=0):
    """Up to `steps` training steps; the DivergenceError if training diverged, else None.

    sampler(step) runs every `sample_every` steps (text: print generated characters).
    """
    for _ in range(steps):
        if stop.is_set():
            return None
        err = session.train_step(keep_grads=False)
        if err is not None:
            return err
        validated = session.step % session.config.val_every == 0
        progress.update(session.step, session.last_loss, session.last_val_loss, validated)
        if sampler is not None and session.step % sample_every == 0:
            sampler(session.step)
    return None


def _save(session, path):
    """session.save(path); a file system error becomes a UsageError naming the path."""
    try:
        session.save(path)
    except OSError as e:
        raise UsageError(f"cannot save {path}: {e.strerror or e}; nothing was written "
                         "there") from None


def _diverged(session, err: DivergenceError, save, stderr) -> int:
    lr, clip = err.lr if err.lr is not None else session.optimizer.lr, session.config.clip
    advice = f"lower --lr (try {lr / 10:.3g})"
    advice += f" or --clip (now {clip:g})" if clip else " or set --clip 1.0"
    msg = (f"{PROG}: training diverged at step {err.step}: {err.tensor} became NaN or Inf "
           f"(lr {lr:g}, clip {clip:g}); {advice}")
    if save is not None:
        try:
            _save(session, save)
            msg += f"; saved the last finite state (step {session.step}) to {save}"
        except UsageError as e:
            msg += f"; {e}"
    print(msg, file=stderr, flush=True)
    return EXIT_DIVERGED


def main(argv=None, stderr=None) -> int:
    """Entry point of `rnnviewer train ARGS`; returns the exit code (never raises for bad input)."""
    stderr = sys.stderr if stderr is None else stderr
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help
        return int(e.code or 0)
    except UsageError as e:
        print(f"{PROG}: error: {e} (see {PROG} --help)", file=stderr)
        return EXIT_USAGE
    if args.example:
        apply_example(args, explicit_dests(argv))
    try:
        # overflow on the way to NaN is reported once as a divergence, not warned per array
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return train(args, stderr)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=stderr)
        return EXIT_USAGE
    except DivergenceError as e:
        print(f"{PROG}: {e}", file=stderr)
        return EXIT_DIVERGED
    except RnnviewerError as e:  # ConfigError, DataError, CheckpointError: one line
        print(f"{PROG}: error: {' '.join(str(e).split())}", file=stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:   # Ctrl-C before the training loop (reading data, compiling)
        print(f"\n{PROG}: interrupted", file=stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
