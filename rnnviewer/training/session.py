"""TrainingSession: the Qt-free training loop behind the window and the headless CLI.

A step loop with callbacks (minGPT's trainer style), stopped or paused through a
`threading.Event` that it polls every step, an optional steps/s cap, divergence
detection with rollback to the last finite state, and immutable snapshots for the
panels `snapshot_hz` times a second on average (on a fixed time grid, so the rate does not
sag by half a step per snapshot; rarer when making them would take more than about a
tenth of the training time, counted in this thread's CPU time so that waiting for the
GIL or the CPU while the GUI paints does not count as their cost).

    s = TrainingSession(SessionConfig(task="sine", cell="gru", hidden=32))
    s.add_callback("on_snapshot", draw)        # fn(snapshot)
    s.compile()                                # warm the numba kernels (no state change)
    s.run(max_steps=500)                       # until done, stop_event set, or divergence
"""

import dataclasses
import math
import threading
import time
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from rnnviewer.engine import Model, clip_grad_norm
from rnnviewer.engine.optim import OPTIMIZERS
from rnnviewer.errors import CheckpointError, ConfigError, DivergenceError
from rnnviewer.training.analyses import AnalysisContext, AnalysisRunner
from rnnviewer.training.snapshot import (History, ProbeTrace, Snapshot, frozen, frozen_config,
                                         frozen_map)

CELLS = ("rnn", "gru", "lstm")
EVENTS = ("on_step", "on_snapshot", "on_validation", "on_diverged")


@dataclass
class SessionConfig:
    """Every setting of a run. `seq_len` and `task_options` go to the task."""

    task: str = "sine"
    task_options: dict = field(default_factory=dict)
    cell: str = "rnn"
    hidden: int = 32
    seq_len: int = 50
    batch: int = 32
    optimizer: str = "adam"
    lr: float = 0.01
    clip: float = 1.0          # global gradient-norm clip; 0 = off
    seed: int = 0
    dtype: str = "float32"
    val_every: int = 25        # steps between validation-loss evaluations
    probe_size: int = 8        # sequences in the probe batch the panels show

    LIVE = ("lr", "clip", "batch", "val_every")   # settable without a reset

    def validate(self):
        """ConfigError for impossible settings, before any work starts."""
        if self.cell not in CELLS:
            raise ConfigError(f"unknown cell {self.cell!r}; choose one of {', '.join(CELLS)}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; "
                              f"choose one of {', '.join(OPTIMIZERS)}")
        for name, low, high in (("hidden", 1, 4096), ("seq_len", 1, 100_000),
                                ("batch", 1, 65_536), ("val_every", 1, 10**9),
                                ("probe_size", 1, 1024)):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not low <= v <= high:
                raise ConfigError(f"{name} must be an integer in [{low}, {high}], got {v!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"learning rate must be a positive number, got {self.lr!r}")
        if not (isinstance(self.clip, (int, float)) and math.isfinite(self.clip)
                and self.clip >= 0):
            raise ConfigError(f"clip norm must be >= 0 (0 = off), got {self.clip!r}")
        return self

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Build from a dict (unknown keys are ignored, so older files still open)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in dict(d).items() if k in names}
        if "task_options" in kw:
            kw["task_options"] = dict(kw["task_options"] or {})
        return cls(**kw)

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def build_task(config):
    """The engine task for `config` (ConfigError/DataError from the task if impossible)."""
    from rnnviewer.engine.tasks import make_task
    opts = {k: v for k, v in dict(config.task_options).items()
            if k not in ("name", "seq_len", "seed", "dtype")}
    return make_task(config.task, seq_len=config.seq_len, seed=config.seed, dtype=config.dtype,
                     **opts)


def build_optimizer(name, params, lr):
    return OPTIMIZERS[name](params, lr)


class TrainingSession:
    """One training run: task, model, optimizer, step count, loss history.

    Every method is meant to be called from one thread (the worker); other threads
    only set `stop_event` (or the event passed to `run`).
    """

    def __init__(self, config, *, task=None, model=None, optimizer_state=None, step=0,
                 history=None, rng_state=None, snapshot_hz=30.0, run_id=0):
        self.config = config.validate() if isinstance(config, SessionConfig) else \
            SessionConfig.from_dict(config).validate()
        c = self.config
        self.task = task if task is not None else build_task(c)
        if model is None:
            model = Model(cell=c.cell, n_in=self.task.n_in, n_hidden=c.hidden,
                          n_out=self.task.n_out, seed=c.seed, dtype=c.dtype)
        elif (model.n_in, model.n_out) != (self.task.n_in, self.task.n_out):
            raise ConfigError(f"the model has {model.n_in} inputs and {model.n_out} outputs, "
                              f"the task {self.task.n_in} and {self.task.n_out}")
        self.model = model
        self.optimizer = build_optimizer(c.optimizer, model.params, c.lr)
        if optimizer_state:
            self.optimizer.load_state_dict(optimizer_state)
            self.optimizer.lr = c.lr
        self.step = int(step)
        self.history = History(history)
        self.rng = np.random.default_rng(c.seed)
        if rng_state is not None:
            self.rng.bit_generator.state = rng_state
        self.run_id = run_id
        self.snapshot_interval = 1.0 / snapshot_hz if snapshot_hz else 0.0
        self.max_snapshot_hz = float(snapshot_hz or 0.0)
        self.max_steps_per_second = 0.0      # 0 = as fast as possible
        self.stop_event = threading.Event()
        self.diverged = None                 # the DivergenceError of the last divergence
        self.last_loss = self.last_val_loss = math.nan
        self.last_grad_norm = math.nan
        self.steps_per_second = 0.0
        self._callbacks = {e: [] for e in EVENTS}
        self._serial = 0
        self._last_snapshot_time = -math.inf
        self._next_snapshot = -math.inf      # monotonic time from which the next is due
        self._last_snapshot_step = None
        self._snapshot_seconds = 0.0         # smoothed CPU cost of a snapshot (no analyses)
        self._snapshot_costed = False        # _snapshot_seconds holds a measurement
        self._analysis_seconds = 0.0         # time the last snapshot spent in analyses
        self._grads = {}                     # copy of the last step's gradients
        # Worker-side analyses for the panels (training/analyses.py): name -> options,
        # replaced as a whole by the owner; results go to Snapshot.extra.
        self.analysis_requests = {}
        self._analyses = AnalysisRunner()
        self._analysis_rng = np.random.default_rng([c.seed, 7])   # never the training rng
        self._rate = (time.monotonic(), self.step)
        # Fixed validation batch and probe batch: the curves and panels compare like with like.
        vrng = np.random.default_rng([c.seed, 1])
        self.val_batch = self.task.batch("val", max(c.batch, 64), vrng)  # (x, target, mask)
        self.probe_batch = tuple(self.task.probe(c.probe_size))         # (x, target, mask)
        self.probe_labels = tuple(tuple(self.task.render_inputs(xs))
                                  for xs in self.probe_batch[0])
        # State before the last step: rollback target and the reference for the update dW.
        self._backup_params = {k: v.copy() for k, v in model.params.items()}
        self._backup_opt = {}
        self._save_backup()
        h = self.history.arrays()
        if len(h["train_loss"]):
            self.last_loss = float(h["train_loss"][-1])
            self.last_grad_norm = float(h["grad_norm"][-1])
        if len(h["val_loss"]):
            self.last_val_loss = float(h["val_loss"][-1])

    # ------------------------------------------------------------ callbacks
    def add_callback(self, event, fn):
        if event not in self._callbacks:
            raise ValueError(f"unknown event {event!r}; one of {EVENTS}")
        self._callbacks[event].append(fn)

    def _trigger(self, event, *args):
        for fn in self._callbacks[event]:
            fn(*args)

    # ------------------------------------------------------------ live settings
    def set_lr(self, lr):
        self.config = self.config.replace(lr=float(lr)).validate()
        self.optimizer.lr = float(lr)

    def set_clip(self, clip):
        self.config = self.config.replace(clip=float(clip)).validate()

    def set_batch(self, batch):
        self.config = self.config.replace(batch=int(batch)).validate()

    def set_snapshot_rate(self, hz):
        """Make snapshots at most `hz` times a second, and never faster than the
        snapshot_hz the session was made with (the owner may lower the rate to what it
        draws: snapshots cost training time). Takes effect from the next snapshot."""
        if self.max_snapshot_hz and hz and hz > 0:
            self.snapshot_interval = 1.0 / min(float(hz), self.max_snapshot_hz)

    def set_speed(self, steps_per_second):
        """Cap the loop at this many steps/s (0 or None: as fast as possible)."""
        self.max_steps_per_second = float(steps_per_second or 0.0)

    # ------------------------------------------------------------ stepping
    def _save_backup(self):
        for k, v in self.model.params.items():
            np.copyto(self._backup_params[k], v)
        for k, v in self.optimizer.state_dict().items():
            b = self._backup_opt.get(k)
            if b is not None and b.shape == np.shape(v) and b.dtype == np.asarray(v).dtype:
                np.copyto(b, v)
            else:
                self._backup_opt[k] = np.array(v, copy=True)

    def _restore_backup(self):
        for k, v in self._backup_params.items():
            np.copyto(self.model.params[k], v)
        self.optimizer.load_state_dict({k: v.copy() for k, v in self._backup_opt.items()})

    def _nonfinite(self, arrays, what):
        for k, v in arrays.items():
            if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
                return f"{what} {k}"
        return None

    def _diverge(self, tensor, rollback):
        if rollback:  # the update was applied: undo it (params and optimizer state)
            self._restore_backup()
        lr, clip = self.optimizer.lr, self.config.clip
        step = self.step + 1
        advice = f"lower the learning rate (try {lr / 10:.3g})"
        advice += (f" or lower the clip norm (now {clip:g})" if clip
                   else " or turn on gradient clipping (clip norm 1.0)")
        msg = (f"Training diverged at step {step}: {tensor} became NaN or Inf "
               f"(learning rate {lr:g}, clip {'off' if not clip else f'{clip:g}'}). "
               f"Training was paused at step {self.step}, the last finite state. To go on, {advice}.")
        self.diverged = DivergenceError(msg, step=step, tensor=tensor, lr=lr)
        self._trigger("on_diverged", self.diverged)
        return self.diverged

    def train_step(self, keep_grads=True):
        """One optimisation step. Returns None, or the DivergenceError after a rollback."""
        # Overflow on the way to NaN is reported once, as a divergence, not warned per array.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            return self._train_step(keep_grads)

    def _train_step(self, keep_grads):
        c = self.config
        x, target, mask = self.task.batch("train", c.batch, self.rng)
        loss, grads = self.model.loss_and_grads(x, target, loss=self.task.loss, mask=mask)
        if not math.isfinite(loss):
            return self._diverge("the loss", rollback=False)
        pgrads = {k: grads[k] for k in self.model.params}
        if keep_grads:
            self._grads = {k: v.copy() for k, v in pgrads.items()}
        norm = clip_grad_norm(pgrads, c.clip if c.clip > 0 else None)
        if not math.isfinite(norm):
            return self._diverge(self._nonfinite(pgrads, "the gradient of") or "the gradient norm",
                                 rollback=False)
        self._save_backup()
        self.optimizer.step(pgrads)
        bad = self._nonfinite(self.model.params, "parameter") or \
            self._nonfinite(self.optimizer.state_dict(), "optimizer state")
        if bad:
            return self._diverge(bad, rollback=True)
        self.step += 1
        self.last_loss, self.last_grad_norm = loss, norm
        self.history.append(self.step, loss, norm, self.optimizer.lr)
        if self.step % c.val_every == 0:
            self.validate()
        self._trigger("on_step", self)
        return None

    def validate(self):
        """Loss on the fixed validation batch (recorded in the history)."""
        x, target, mask = self.val_batch
        tr = self.model.forward(x)
        loss, _ = self.model.loss(tr.y, target, self.task.loss, mask)
        self.last_val_loss = loss
        self.history.append_val(self.step, loss)
        self._trigger("on_validation", self, loss)
        return loss

    def _update_rate(self, now):
        t0, s0 = self._rate
        if now - t0 >= 0.5:
            self.steps_per_second = (self.step - s0) / (now - t0)
            self._rate = (now, self.step)

    def run(self, max_steps=None, stop_event=None):
        """Train until `max_steps` steps were made, the stop event is set, or divergence.

        Returns the number of steps made. Emits a snapshot (through "on_snapshot") at most
        `snapshot_hz` times a second and once at the end if anything changed.
        """
        stop = stop_event if stop_event is not None else self.stop_event
        done = 0
        self._rate = (time.monotonic(), self.step)
        next_time = time.monotonic()
        while not stop.is_set() and (max_steps is None or done < max_steps):
            if self.train_step() is not None:   # keeps a copy of the gradients (< 1% cost)
                break
            done += 1
            now = time.monotonic()
            self._update_rate(now)
            if now >= self._next_snapshot and self._callbacks["on_snapshot"]:
                self.emit_snapshot()
                self._schedule_snapshot(now)
            if self.max_steps_per_second > 0:
                next_time = max(next_time + 1.0 / self.max_steps_per_second, now - 1.0)
                if next_time > now:
                    stop.wait(next_time - now)
        if self._last_snapshot_step != self.step or self.diverged is not None:
            self.emit_snapshot()
        return done

    def _schedule_snapshot(self, now):
        """Set when the next snapshot is due: one interval after the last due time (a fixed
        grid: the average rate is snapshot_hz even though a snapshot waits for the end of a
        step), at least half an interval from now. The interval is 1/snapshot_hz, or 10x
        the snapshot's CPU cost if that is longer (at most ~10% of the loop's time);
        snapshot_hz=0: every step."""
        if not self.snapshot_interval:
            self._next_snapshot = -math.inf
            return
        interval = max(self.snapshot_interval, 10.0 * self._snapshot_seconds)
        due = self._next_snapshot + interval
        self._next_snapshot = due if due >= now + 0.5 * interval else now + interval

    def emit_snapshot(self):
        t0 = time.thread_time()
        snap = self.snapshot()
        # CPU time of this thread: waiting for the GIL or a core is not the snapshot's cost;
        # the analyses are left out too (they pace themselves)
        cost = max(time.thread_time() - t0 - self._analysis_seconds, 0.0)
        self._snapshot_seconds = 0.7 * self._snapshot_seconds + 0.3 * cost \
            if self._snapshot_costed else cost
        self._snapshot_costed = True
        self._trigger("on_snapshot", snap)
        return snap

    # ------------------------------------------------------------ snapshots
    def snapshot(self):
        """An immutable Snapshot of the current state (runs the probe batch)."""
        m, task = self.model, self.task
        x, target, mask = self.probe_batch
        tr = m.forward(x)
        ploss, dy = m.loss(tr.y, target, task.loss, mask)
        pg = m.backward(tr, dy=dy, params=False)   # only dL/dh_t is shown: no weight products
        probe = ProbeTrace(x=frozen(tr.x), target=frozen(target), mask=frozen(mask),
                           h=frozen(tr.h), y=frozen(tr.y), c=frozen(tr.c),
                           gates=frozen_map(tr.gates), dh=frozen(pg["h"]), loss=float(ploss),
                           labels=self.probe_labels)
        self._analysis_seconds = 0.0
        extra = self._run_analyses(probe)
        params = frozen_map(m.params)
        if self.step > 0 and self._backup_params:
            delta = frozen_map({k: m.params[k] - self._backup_params[k] for k in m.params},
                               copy=False)
        else:
            delta = frozen_map({k: np.zeros_like(v) for k, v in m.params.items()}, copy=False)
        # _grads holds copies made for this purpose and never written again: no second copy
        grads = self._grads or {k: np.zeros_like(v) for k, v in m.params.items()}
        self._serial += 1
        now = time.monotonic()
        self._last_snapshot_time = now
        self._last_snapshot_step = self.step
        return Snapshot(
            run_id=self.run_id, serial=self._serial, step=self.step, loss=float(self.last_loss),
            val_loss=float(self.last_val_loss), grad_norm=float(self.last_grad_norm),
            lr=float(self.optimizer.lr), clip=float(self.config.clip),
            steps_per_second=float(self.steps_per_second), history=frozen_map(
                self.history.arrays(), copy=False), params=params, delta=delta,
            grads=frozen_map(grads, copy=False), probe=probe, model_config=frozen_config(m.config),
            gate_names=tuple(m.gate_names), task_name=self.config.task,
            task_config=frozen_config(self.task_config()),
            task_description=str(getattr(task, "description", "")),
            loss_name=task.loss, optimizer=self.config.optimizer, time=now, extra=extra)

    def _run_analyses(self, probe):
        """The due analyses the panels asked for (their latest results otherwise)."""
        requests = self.analysis_requests
        if not requests and not self._analyses.results:
            return MappingProxyType({})
        ctx = AnalysisContext(model=self.model, task=self.task, probe=probe, step=self.step,
                              rng=self._analysis_rng)
        t0 = time.thread_time()
        out = self._analyses.run_due(requests, ctx)
        self._analysis_seconds = time.thread_time() - t0
        return out

    # ------------------------------------------------------------ compile, save
    def compile(self):
        """Run one full step on copies so numba compiles every kernel; returns seconds."""
        t0 = time.perf_counter()
        c = self.config
        m = self.model.copy()
        opt = build_optimizer(c.optimizer, m.params, c.lr)
        x, target, mask = self.task.batch("train", c.batch, np.random.default_rng(0))
        _, grads = m.loss_and_grads(x, target, loss=self.task.loss, mask=mask)
        pgrads = {k: grads[k] for k in m.params}
        clip_grad_norm(pgrads, 1.0)
        opt.step(pgrads)
        xp, tp, mp = self.probe_batch
        tr = m.forward(xp)
        _, dy = m.loss(tr.y, tp, self.task.loss, mp)
        m.backward(tr, dy=dy, params=False)            # as in snapshot()
        return time.perf_counter() - t0

    def task_config(self):
        cfg = getattr(self.task, "config", None)
        return dict(cfg) if cfg is not None else {"name": self.config.task,
                                                  **self.config.task_options}

    def save(self, path):
        """Write this session to `path` (see sessionfile); atomic."""
        from rnnviewer.training.sessionfile import save_session
        save_session(path, self.model, self.optimizer, self.task_config(), self.step,
                     self.history.arrays(copy=True), extra=self.extra_state())

    def extra_state(self):
        """What besides model/optimizer/history an exact continuation needs."""
        return {"session_config": self.config.to_dict(),
                "rng_state": self.rng.bit_generator.state}

    @classmethod
    def from_file(cls, path, **kw):
        """Reopen a saved session exactly where it was."""
        from rnnviewer.training.sessionfile import load_session
        data = load_session(path)
        try:
            return cls.from_session_data(data, **kw)
        except CheckpointError:
            raise
        except (ConfigError, TypeError, ValueError, KeyError) as e:
            raise CheckpointError(f"{path}: the saved settings cannot be used "
                                  f"({type(e).__name__}: {e})") from None

    @classmethod
    def from_session_data(cls, data, **kw):
        extra = data.extra or {}
        cfg = extra.get("session_config")
        config = SessionConfig.from_dict(cfg) if cfg else config_from_task_config(
            data.task_config, data.model)
        config = config.replace(cell=data.model.cell, hidden=data.model.n_hidden,
                                dtype=data.model.dtype.name, seed=data.model.seed)
        if data.optimizer_name:
            config = config.replace(optimizer=data.optimizer_name)
        if data.lr is not None:
            config = config.replace(lr=data.lr)
        return cls(config, model=data.model, optimizer_state=data.optimizer_state,
                   step=data.step, history=data.history, rng_state=extra.get("rng_state"), **kw)


def config_from_task_config(task_config, model):
    """A SessionConfig for a file written without one (e.g. by another tool)."""
    tc = dict(task_config or {})
    name = tc.pop("name", tc.pop("task", "sine"))
    seq_len = tc.pop("seq_len", 50)
    tc.pop("seed", None)
    tc.pop("dtype", None)
    return SessionConfig(task=name, task_options=tc, seq_len=int(seq_len), cell=model.cell,
                         hidden=model.n_hidden, seed=model.seed, dtype=model.dtype.name)
