"""The recurrent model: an RNN/GRU/LSTM layer plus an optional linear readout.

    h_t = tanh(W_hh h_{t-1} + W_xh x_t + b_h)      (Elman; b_h = b_xh + b_hh)
    y_t = W_hy h_t + b_y

Parameters use torch's layout (see docs/developer-guide.md), so state_dicts of
torch.nn.RNN/GRU/LSTM + Linear map one to one.
"""

import sys
from dataclasses import dataclass, field

import numpy as np

from rnnviewer.engine import losses
from rnnviewer.engine.kernels import BACKENDS, get_cell
from rnnviewer.errors import ConfigError

GATES = {"rnn": (), "gru": ("r", "z", "n"), "lstm": ("i", "f", "g", "o")}
MAX_HIDDEN = 4096
MAX_INPUT = 100_000
MAX_ACTIVATION_BYTES = 4 << 30   # what one forward pass may keep for backward


@dataclass
class Trace:
    """What one forward pass computed; arrays are (B, T, ...)."""

    x: np.ndarray                     # (B, T, I)
    h: np.ndarray                     # (B, T, H)
    y: np.ndarray | None              # (B, T, O), None without a readout
    c: np.ndarray | None = None       # (B, T, H) LSTM cell state
    gates: dict = field(default_factory=dict)  # name -> (B, T, H)
    h0: np.ndarray | None = None      # (B, H)
    c0: np.ndarray | None = None      # (B, H)
    _out: dict | None = field(default=None, repr=False)
    _xk: np.ndarray | None = field(default=None, repr=False)  # x as the kernel took it


def param_shapes(cell, n_in, n_hidden, n_out):
    """name -> shape of every parameter of a model with these sizes (see the module doc)."""
    G, H, I, O = max(1, len(GATES[cell])), n_hidden, n_in, n_out
    shapes = {"W_xh": (G * H, I), "W_hh": (G * H, H), "b_xh": (G * H,), "b_hh": (G * H,)}
    if O:
        shapes.update({"W_hy": (O, H), "b_y": (O,)})
    return shapes


def check_config(cell, n_in, n_hidden, n_out, seed=0, dtype="float32"):
    """The model config as a dict of plain values; ConfigError naming a bad setting."""
    if not isinstance(cell, str) or cell not in GATES:
        raise ConfigError(f"unknown cell {cell!r}; choose one of rnn, gru, lstm")
    try:
        ok = np.dtype(dtype) in (np.float32, np.float64)
    except Exception:   # TypeError, ValueError, even SyntaxError for some strings
        ok = False
    if not ok:
        raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return {"cell": cell, "n_in": _check_size("n_in", n_in, 1, MAX_INPUT),
            "n_hidden": _check_size("n_hidden", n_hidden, 1, MAX_HIDDEN),
            "n_out": _check_size("n_out", n_out, 0, MAX_INPUT), "seed": int(seed),
            "dtype": np.dtype(dtype).name}


def _check_size(name, value, low, high):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name} must lie in [{low}, {high}], got {value}")
    return int(value)


class Model:
    """A single recurrent layer (cell "rnn", "gru" or "lstm") with a linear readout.

    `n_out=0` builds the recurrent layer alone (hidden states and gates only).
    `params` (name -> array, as `set_params` takes) replaces the random initialisation.
    `lazy=True` loads the cell's kernels on first use instead of now (a model that may
    only be read, such as a file's: no numba import; a missing BLAS shows only then).
    """

    def __init__(self, cell="rnn", n_in=1, n_hidden=32, n_out=1, seed=0,
                 dtype="float32", backend="numba", params=None, lazy=False):
        cfg = check_config(cell, n_in, n_hidden, n_out, seed, dtype)
        self.cell = cell
        self.n_in, self.n_hidden, self.n_out = cfg["n_in"], cfg["n_hidden"], cfg["n_out"]
        self.seed = cfg["seed"]
        self.dtype = np.dtype(dtype)
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.gate_names = GATES[cell]
        if params is None:
            self.params = self._init_params(np.random.default_rng(self.seed))
        else:
            self.params = {}
            self.set_params(params)
        self._kernel_set = None          # see _kernels
        if not lazy:
            self._kernels()

    # ------------------------------------------------------------ kernels
    def _kernels(self):
        """(forward, backward, step, head, fused) of the cell, imported once: numba's
        import and set-up (about 0.4 s) is not paid by a lazy model that is only read,
        such as the one a session file's check builds in the window's process."""
        if self._kernel_set is None:
            fwd, bwd, step = get_cell(self.cell, self.backend)
            head = fused = None          # numba readout + losses; a cell's fused pass
            if self.backend == "numba":
                from rnnviewer.engine.kernels import head
                module = sys.modules.get(getattr(fwd, "__module__", ""))
                fused = getattr(module, "loss_and_grads", None)
            self._kernel_set = (fwd, bwd, step, head, fused)
        return self._kernel_set

    _fwd = property(lambda self: self._kernels()[0])
    _bwd = property(lambda self: self._kernels()[1])
    _step = property(lambda self: self._kernels()[2])
    _head = property(lambda self: self._kernels()[3])
    _fused = property(lambda self: self._kernels()[4])

    # ------------------------------------------------------------ construction
    @property
    def n_gates(self):
        return max(1, len(self.gate_names))

    @property
    def state_size(self):
        """Size of the dynamical state: H, or 2H for the LSTM ([h, c])."""
        return 2 * self.n_hidden if self.cell == "lstm" else self.n_hidden

    @property
    def config(self):
        return {"cell": self.cell, "n_in": self.n_in, "n_hidden": self.n_hidden,
                "n_out": self.n_out, "seed": self.seed, "dtype": self.dtype.name}

    def param_shapes(self):
        return param_shapes(self.cell, self.n_in, self.n_hidden, self.n_out)

    def _init_params(self, rng):
        """torch's default: every weight and bias uniform in +-1/sqrt(H)."""
        bound = 1.0 / np.sqrt(self.n_hidden)
        return {k: rng.uniform(-bound, bound, size=s).astype(self.dtype)
                for k, s in self.param_shapes().items()}

    def copy(self):
        return Model(**self.config, backend=self.backend, params=self.params)

    def set_params(self, params):
        """Replace every parameter (checked for names and shapes), cast to the model dtype."""
        shapes = self.param_shapes()
        if set(params) != set(shapes):
            raise ConfigError(f"parameters {sorted(params)} do not match {sorted(shapes)}")
        for k, s in shapes.items():
            if np.shape(params[k]) != s:
                raise ConfigError(f"{k}: expected shape {s}, found {np.shape(params[k])}")
            kind = np.asarray(params[k]).dtype
            if kind.kind not in "fiub":
                raise ConfigError(f"{k}: expected real numbers, found {kind}")
        for k in shapes:
            self.params[k] = np.array(params[k], dtype=self.dtype)

    # ------------------------------------------------------------ computation
    def _prepare(self, x, h0):
        x = np.asarray(x)
        ids = x.ndim == 2 and x.dtype.kind in "iu"   # token ids: one-hot rows of size n_in
        if ids:
            if x.shape[0] < 1 or x.shape[1] < 1:
                raise ConfigError(f"token ids must have shape (B, T) with B, T >= 1, got {x.shape}")
            if x.min() < 0 or x.max() >= self.n_in:
                raise ConfigError(f"token ids must lie in [0, {self.n_in}), got "
                                  f"[{x.min()}, {x.max()}]")
        elif x.ndim != 3 or x.shape[2] != self.n_in or x.shape[0] < 1 or x.shape[1] < 1:
            raise ConfigError(f"x must have shape (B, T, {self.n_in}) with B, T >= 1 "
                              f"(or (B, T) integer token ids), got {x.shape}")
        if x.dtype.kind not in "fiub":
            raise ConfigError(f"x must hold real numbers, got dtype {x.dtype}")
        B, T, H = x.shape[0], x.shape[1], self.n_hidden
        need = B * T * H * (self.n_gates + 2) * self.dtype.itemsize   # h, c, gates
        if need > MAX_ACTIVATION_BYTES:
            raise ConfigError(f"a forward pass over {B} sequences of {T} steps with {H} hidden "
                              f"units would need {need / 2**30:.1f} GB of activations; use a "
                              "smaller batch, a shorter sequence or fewer hidden units")
        x = np.ascontiguousarray(x, dtype=np.int64 if ids else self.dtype)
        c0 = None
        if self.cell == "lstm":
            if h0 is None:
                h0 = c0 = None
            elif isinstance(h0, (tuple, list)) and len(h0) == 2:
                h0, c0 = h0
            else:
                raise ConfigError("an LSTM's h0 is a tuple (h0, c0)")
            c0 = np.zeros((B, H), self.dtype) if c0 is None else self._state(c0, B, "c0")
        h0 = np.zeros((B, H), self.dtype) if h0 is None else self._state(h0, B, "h0")
        return x, h0, c0

    def _state(self, s, B, name):
        try:
            s = np.ascontiguousarray(s, dtype=self.dtype)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an array of shape {(B, self.n_hidden)}") from None
        if s.shape != (B, self.n_hidden):
            raise ConfigError(f"{name} must have shape {(B, self.n_hidden)}, got {s.shape}")
        return s

    def one_hot(self, ids):
        """Token ids (B, T) -> their one-hot rows (B, T, I) in the model dtype."""
        ids = np.asarray(ids)
        out = np.zeros(ids.shape + (self.n_in,), self.dtype)
        np.put_along_axis(out, ids[..., None], 1, axis=-1)
        return out

    def forward(self, x, h0=None):
        """x (B, T, I), or (B, T) integer token ids meaning one-hot rows of size I ->
        Trace with h (B, T, H), y (B, T, O), c and gates (trace.x is x as given)."""
        x, h0, c0 = self._prepare(x, h0)
        xk = x
        if x.ndim == 2 and not getattr(self._fwd, "accepts_token_ids", False):
            xk = self.one_hot(x)
        out = self._fwd(self.params, xk, h0, c0)
        y = None
        if self.n_out and self._head is not None:
            y = self._head.readout(out["h"], self.params["W_hy"], self.params["b_y"])
        elif self.n_out:
            y = out["h"] @ self.params["W_hy"].T + self.params["b_y"]  # (B, T, O)
        return Trace(x=x, h=out["h"], y=y, c=out["c"], gates=out["gates"],
                     h0=h0, c0=c0, _out=out, _xk=xk)

    def backward(self, trace, dy=None, dh=None, *, params=True):
        """BPTT from dL/dy (B, T, O) and/or an extra dL/dh_t (B, T, H).

        Returns grads for every parameter plus "x" (B,T,I), "h" (B,T,H) total dL/dh_t,
        "h0" (B,H) (and "c0" for the LSTM). params=False skips the parameter gradients
        (every weight product and bias sum: about 40% of the work) and returns only
        "x", "h", "h0" (and "c0"), equal to the full pass's; for attributions.
        dy and dh are only read.
        """
        B, T, H = trace.h.shape
        dh_out = None if dh is None else np.ascontiguousarray(dh, dtype=self.dtype)
        if dh_out is not None and dh_out.shape != (B, T, H):
            raise ConfigError(f"dh must have shape {(B, T, H)} like trace.h, got {dh_out.shape}")
        grads = {}
        if dy is not None and not self.n_out:
            raise ConfigError("this model has no readout: pass dh, not dy")
        if self.n_out and dy is None:  # nothing flows through the readout: its grads are 0
            if params:
                grads["W_hy"] = np.zeros_like(self.params["W_hy"])
                grads["b_y"] = np.zeros_like(self.params["b_y"])
        elif self.n_out:
            dy = np.ascontiguousarray(dy, dtype=self.dtype)
            if dy.shape != (B, T, self.n_out):
                raise ConfigError(f"dy must have shape {(B, T, self.n_out)} like trace.y, "
                                  f"got {dy.shape}")
            if self._head is not None:  # dh_out: a new array
                gW, gb, dh_out = self._head.readout_backward(
                    trace.h, dy, self.params["W_hy"], dh_out, params=params)
            else:
                dh_in = dy @ self.params["W_hy"]
                dh_out = dh_in if dh_out is None else dh_out + dh_in  # (B, T, H), new
                flat = dy.reshape(B * T, self.n_out)
                gW = flat.T @ trace.h.reshape(B * T, H) if params else None
                gb = flat.sum(0) if params else None
            if params:
                grads["W_hy"], grads["b_y"] = gW, gb
        if dh_out is None:
            dh_out = np.zeros((B, T, H), self.dtype)
        xk = trace.x if trace._xk is None else trace._xk
        if params:
            g = self._bwd(self.params, xk, trace._out, dh_out)
        else:
            g = self._bwd(self.params, xk, trace._out, dh_out, params=False)
        grads.update(g)
        return grads

    def loss(self, y, target, loss="mse", mask=None):
        if not isinstance(loss, str) or loss not in losses.LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose mse or xent")
        return losses.LOSSES[loss](y, target, mask)

    def loss_and_grads(self, x, target, loss="mse", h0=None, mask=None):
        """(loss, grads): grads holds every params key plus "x" and "h" (and "h0")."""
        if not self.n_out:
            raise ConfigError("this model has no readout, so it has no loss")
        if self._head is None:
            tr = self.forward(x, h0)
            value, dy = self.loss(tr.y, target, loss, mask)
            return value, self.backward(tr, dy=dy)
        # numba backend: readout, loss and dL/dy in one pass (the same arithmetic)
        if not isinstance(loss, str) or loss not in losses.LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose mse or xent")
        x, h0, c0 = self._prepare(x, h0)
        xk = x
        if x.ndim == 2 and not getattr(self._fwd, "accepts_token_ids", False):
            xk = self.one_hot(x)
        B, T = x.shape[:2]
        shape = (B, T, self.n_out)
        target = losses.check_target(loss, target, shape, self.dtype)
        w, count = losses.weights(mask, B, T, self.dtype)
        w = np.ones((B, T), self.dtype) if w is None else np.ascontiguousarray(w)
        if self._fused is not None:  # the whole step in one pass per batch chunk
            return self._fused(self.params, xk, h0, c0, loss, target, w, count)
        out = self._fwd(self.params, xk, h0, c0)
        h = out["h"]
        W_hy = self.params["W_hy"]
        value, _, dy = self._head.readout_loss(h, W_hy, self.params["b_y"], loss, target, w,
                                               count)
        grads = {}
        grads["W_hy"], grads["b_y"], dh_out = self._head.readout_backward(h, dy, W_hy)
        grads.update(self._bwd(self.params, xk, out, dh_out))
        return value, grads

    def step_state(self, state, x_t):
        """One step of the dynamics: state (N, S) with x_t (N, I) -> next state (N, S)."""
        state = np.asarray(state, dtype=self.dtype)
        if state.ndim != 2 or state.shape[1] != self.state_size:
            raise ConfigError(f"state must have shape (N, {self.state_size}), got {state.shape}")
        x_t = np.asarray(x_t, dtype=self.dtype)
        try:
            x_t = np.broadcast_to(x_t, state.shape[:-1] + (self.n_in,))
        except ValueError:
            raise ConfigError(f"x_t must have shape (N, {self.n_in}) or broadcast to it, "
                              f"got {x_t.shape}") from None
        return self._step(self.params, state, x_t)

    # ------------------------------------------------------------ torch layout
    def load_torch(self, rnn_state, head_state=None):
        """Take numpy arrays keyed like torch.nn.RNN/GRU/LSTM (layer 0) + torch.nn.Linear."""
        names = {"W_xh": "weight_ih_l0", "W_hh": "weight_hh_l0",
                 "b_xh": "bias_ih_l0", "b_hh": "bias_hh_l0"}
        new = {}
        for ours, theirs in names.items():
            if theirs not in rnn_state:
                raise ConfigError(f"recurrent state has no {theirs!r}")
            new[ours] = np.asarray(rnn_state[theirs])
        if self.n_out:
            if head_state is None:
                raise ConfigError("this model has a readout: pass the Linear's state")
            for ours, theirs in (("W_hy", "weight"), ("b_y", "bias")):
                if theirs not in head_state:
                    raise ConfigError(f"readout state has no {theirs!r}")
                new[ours] = np.asarray(head_state[theirs])
        self.set_params(new)
        return self

    def to_torch(self, mapping=None):
        """(rnn_state, head_state) in torch's keys from `mapping` (default: params)."""
        m = self.params if mapping is None else mapping
        rnn = {"weight_ih_l0": m["W_xh"], "weight_hh_l0": m["W_hh"],
               "bias_ih_l0": m["b_xh"], "bias_hh_l0": m["b_hh"]}
        head = {"weight": m["W_hy"], "bias": m["b_y"]} if "W_hy" in m else None
        return rnn, head
