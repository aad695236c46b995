"""Per-timestep attributions through the engine's own BPTT (no autograd, no hooks).

The attributed quantity f_b(x) for sequence b is chosen by (t, k):

- `k` an int (default `layer="output"`): f_b = y[b, t, k], the readout (a logit for
  xent models). `layer="hidden"`: f_b = h[b, t, k], hidden unit k (the default for a
  model without readout).
- `k="loss"` with `target=`, `loss=` ("mse" or "xent") and optional `mask=` (B, T):
  f_b is the per-sequence loss, the model's loss formula applied to sequence b alone
  (target[b], mask[b]); `t=None` takes the whole sequence (mean over its unmasked
  positions: exactly `model.loss(y[b:b+1], target[b:b+1], loss, mask[b:b+1])[0]`),
  an int `t` only the loss term at step t (mse: mean over O of (y-target)^2;
  xent: -log softmax(y)[target]), times mask[b, t].

`t` follows Python indexing (negative counts from the end). Every function takes
`h0` as `Model.forward` does, and `batch_size` (rows per forward pass) to bound memory.
Results are in the model's dtype; for exact checks use a float64 model.
"""

from functools import lru_cache

import numpy as np

from rnnviewer.engine import losses
from rnnviewer.engine.losses import log_softmax
from rnnviewer.engine.model import Trace
from rnnviewer.errors import ConfigError

IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle",
              "riemann_trapezoid")
DEFAULT_BATCH = 1024


# ------------------------------------------------------------------ the objective
class _Objective:
    """f_b for rows of a (possibly enlarged) batch; rows[r] is the sequence b of row r."""

    def __init__(self, model, x_shape, t, k, layer, target, loss, mask):
        B, T, _ = x_shape
        self.model, self.B, self.T = model, B, T
        self.is_loss = isinstance(k, str)
        if self.is_loss:
            if k != "loss":
                raise ConfigError(f"k must be an int or 'loss', got {k!r}")
            if not model.n_out:
                raise ConfigError("this model has no readout, so it has no loss")
            if loss not in ("mse", "xent"):
                raise ConfigError(f"with k='loss' pass loss='mse' or 'xent', got {loss!r}")
            if target is None:
                raise ConfigError("with k='loss' pass target=")
            self.loss = loss
            want = (B, T, model.n_out) if loss == "mse" else (B, T)
            self.target = np.asarray(target)
            if self.target.shape != want:
                raise ConfigError(f"{loss} target has shape {self.target.shape}, expected {want}")
            if loss == "xent":
                if not np.issubdtype(self.target.dtype, np.integer):
                    raise ConfigError("xent target must hold integer class ids")
                if self.target.min() < 0 or self.target.max() >= model.n_out:
                    raise ConfigError(f"xent target ids must lie in [0, {model.n_out})")
            self.mask = np.ones((B, T)) if mask is None else np.asarray(mask, dtype=np.float64)
            if self.mask.shape != (B, T):
                raise ConfigError(f"mask has shape {self.mask.shape}, expected {(B, T)}")
            self.t = None if t is None else _timestep(t, T)
        else:
            layer = layer or ("output" if model.n_out else "hidden")
            if layer not in ("output", "hidden"):
                raise ConfigError(f"layer must be 'output' or 'hidden', got {layer!r}")
            if layer == "output" and not model.n_out:
                raise ConfigError("this model has no readout: use layer='hidden'")
            size = model.n_out if layer == "output" else model.n_hidden
            if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k < size:
                raise ConfigError(f"k must be an {layer} unit in [0, {size}), got {k!r}")
            if t is None:
                raise ConfigError("t (the output timestep) is needed unless k='loss'")
            self.layer, self.k, self.t = layer, int(k), _timestep(t, T)

    @property
    def horizon(self):
        """Timesteps that can influence f: everything up to t (the model is causal)."""
        return self.T if self.t is None else self.t + 1

    def __call__(self, trace, rows, seeds=True):
        """values (R,) float64 and, if seeds, dh (R, Tr, H) = d values / d h_t to
        backpropagate (None otherwise). Only trace.h is read: the readout is applied
        here to the outputs f needs, so the forward pass runs without it."""
        h = trace.h                                             # (R, Tr, H)
        R = h.shape[0]
        dt = self.model.dtype
        p = self.model.params
        if not self.is_loss:
            if self.layer == "output":  # y_t[k] = W_hy[k] . h_t + b_y[k]
                w_k = p["W_hy"][self.k]                         # (H,)
                values = h[:, self.t].astype(np.float64) @ w_k.astype(np.float64) \
                    + float(p["b_y"][self.k])
            else:
                values = h[:, self.t, self.k].astype(np.float64)
            if not seeds:
                return values, None
            seed = np.zeros(h.shape, dt)                        # dy_t/dh_t: (R, Tr, H)
            if self.layer == "output":
                seed[:, self.t] = w_k
            else:
                seed[:, self.t, self.k] = 1.0
            return values, seed
        sl = slice(None) if self.t is None else slice(self.t, self.t + 1)
        hs = h[:, sl]                                           # (R, T', H)
        w = self.mask[rows][:, sl]                              # (R, T')
        tgt = self.target[rows][:, sl]
        n = w.sum(1) if self.t is None else np.ones(R)          # (R,), floored at 1 below
        W_hy = p["W_hy"]
        if self.model.backend == "numba":  # readout, loss and dL/dy per row in one pass
            from rnnviewer.engine.kernels import head

            values, _, dy = head.row_losses(hs, W_hy, p["b_y"], self.loss, tgt, w, n)
        else:
            values, dy = _row_losses(hs, W_hy, p["b_y"], self.loss, tgt, w, n)
        if not seeds:
            return values, None
        seed = np.zeros(h.shape, dt)                            # dL/dh_t = dL/dy_t W_hy
        O = W_hy.shape[0]
        seed[:, sl] = (dy.reshape(-1, O) @ W_hy).reshape(hs.shape)
        return values, seed


def _row_losses(h, W_hy, b_y, loss, tgt, w, n):
    """numpy twin of `kernels.head.row_losses` (float64 arithmetic): each row's own loss
    (values (R,) float64) and dy (R, T, O) = d values / d y in h's dtype."""
    y = (h @ W_hy.T + b_y).astype(np.float64)                   # (R, T, O)
    n = np.maximum(n, 1.0)                                      # (R,)
    if loss == "mse":
        O = y.shape[2]
        diff = y - tgt
        wdiff = diff * w[:, :, None]   # weights act linearly, as in `losses.mse`
        values = (wdiff * diff).sum((1, 2)) / (n * O)
        grad = 2.0 * wdiff / (n * O)[:, None, None]
    else:
        logp = log_softmax(y)
        picked = np.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]  # (R, T)
        values = -(picked * w).sum(1) / n
        grad = np.exp(logp)
        np.put_along_axis(grad, tgt[..., None],
                          np.take_along_axis(grad, tgt[..., None], -1) - 1.0, -1)
        grad *= (w / n[:, None])[:, :, None]
    return values, grad.astype(h.dtype)


def _timestep(t, T):
    if not isinstance(t, (int, np.integer)) or isinstance(t, bool) or not -T <= t < T:
        raise ConfigError(f"t must be an int in [{-T}, {T}), got {t!r}")
    return int(t) % T


def _check_x(model, x):
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != model.n_in or min(x.shape[:2]) < 1:
        raise ConfigError(f"x must have shape (B, T, {model.n_in}), got {x.shape}")
    return np.asarray(x, dtype=model.dtype)


def _baseline(model, x, baseline):
    if baseline is None:
        return np.zeros_like(x)
    b = np.asarray(baseline, dtype=model.dtype)
    try:
        return np.broadcast_to(b, x.shape)
    except ValueError:
        raise ConfigError(f"baseline of shape {b.shape} does not broadcast to x {x.shape}") \
            from None


def _token_ids(model, x, baseline, base):
    """x's token ids (B, T) when integrated gradients can take the token path: x one-hot,
    a zero baseline and a kernel that scales token-id rows (`forward.accepts_row_scale`;
    its backward then takes hot_only=True); else None. The path's points are then
    alpha * one-hot: a scaled row lookup of W_xh forward, and since attributions are
    (x - 0) * gradient, only the gradient at each token's own position is needed (one
    dot product per row, not an I-wide product)."""
    if not getattr(model._fwd, "accepts_row_scale", False) or model.n_in < 2:
        return None
    if baseline is not None and np.any(base):
        return None
    if not np.all((x == 0) | (x == 1)) or not np.all(x.sum(-1) == 1):
        return None
    return x.argmax(-1)


def _h0_rows(model, h0, rows):
    """Select the initial state of each row's sequence (None stays None)."""
    if h0 is None:
        return None
    if model.cell == "lstm":
        if not isinstance(h0, (tuple, list)):
            raise ConfigError("an LSTM's h0 is a tuple (h0, c0)")
        return tuple(None if s is None else np.asarray(s)[rows] for s in h0)
    return np.asarray(h0)[rows]


def _forward(model, x, h0, scale=None):
    """`model.forward(x, h0)` without the readout (trace.y is None): the objective
    computes from h only the outputs it needs (one unit at one step, or the loss rows),
    and nothing flows back through the readout. x as `model.forward` takes it; scale
    (rows,) with token ids x (kernels with `accepts_row_scale` only): row r's inputs are
    scale[r] times its one-hot rows."""
    x, h0, c0 = model._prepare(x, h0)
    xk = x
    if x.ndim == 2 and not getattr(model._fwd, "accepts_token_ids", False):
        xk = model.one_hot(x)
    if scale is None:
        out = model._fwd(model.params, xk, h0, c0)
    else:
        out = model._fwd(model.params, xk, h0, c0, scale=scale)
    return Trace(x=x, h=out["h"], y=None, c=out["c"], gates=out["gates"], h0=h0, c0=c0,
                 _out=out, _xk=xk)


def _run(model, obj, make, n_rows, rows, h0, batch_size, grads=True, weights=None,
         scale=None):
    """f (R,) and df/dx for the rows make(lo, hi) -> (hi - lo, T, I) builds, at most
    batch_size rows per forward pass; rows[r] is row r's sequence. df/dx is (R, T, I),
    or with `weights` (R,) the weighted sum per sequence, (B, T, I) float64.
    With `scale` (R,) (the token path, `_token_ids`): make builds token ids (hi - lo, T),
    row r's inputs are scale[r] times their one-hot rows, and df/dx holds only the
    gradient at each token's own position: (R, T), or (B, T) with weights."""
    values = np.empty(n_rows)
    dx = None
    step = max(1, int(batch_size or DEFAULT_BATCH))
    for lo in range(0, n_rows, step):
        hi = min(n_rows, lo + step)
        h0_r = _h0_rows(model, h0, rows[lo:hi])
        tr = _forward(model, make(lo, hi), h0_r, None if scale is None else scale[lo:hi])
        v, dh = obj(tr, rows[lo:hi], seeds=grads)
        values[lo:hi] = v
        if not grads:
            continue
        if scale is None:
            g = model.backward(tr, dh=dh, params=False)["x"]   # no parameter gradients
        else:  # (hi - lo, T): dL/dx at the hot positions only
            g = model._bwd(model.params, tr._xk, tr._out, dh, params=False, hot_only=True)["x"]
        if weights is None:
            if dx is None:
                dx = np.empty((n_rows,) + g.shape[1:], g.dtype)
            dx[lo:hi] = g
        else:  # dx[b] += sum over this block's rows r of sequence b: weights[r] * g[r]
            if dx is None:
                dx = np.zeros((int(rows.max()) + 1,) + g.shape[1:])
            mix = np.zeros((dx.shape[0], hi - lo))                  # (B, rows in block)
            mix[rows[lo:hi], np.arange(hi - lo)] = weights[lo:hi]
            dx += (mix @ g.reshape(hi - lo, -1).astype(np.float64)).reshape(dx.shape)
    return values, dx


# ------------------------------------------------------------------ public API
def saliency(model, x, t, k, *, layer=None, target=None, loss=None, mask=None, h0=None,
             batch_size=None):
    """d f_b / d x[b]: (B, T, I). f_b = y[b, t, k] (see the module docstring)."""
    x = _check_x(model, x)
    obj = _Objective(model, x.shape, t, k, layer, target, loss, mask)
    B, Th = x.shape[0], obj.horizon  # later inputs cannot matter: their gradient is 0
    g = _run(model, obj, lambda lo, hi: x[lo:hi, :Th], B, np.arange(B), h0, batch_size)[1]
    out = np.zeros(x.shape, model.dtype)
    out[:, :Th] = g
    return out


def input_x_gradient(model, x, t, k, **kw):
    """x times the saliency: (B, T, I)."""
    x = _check_x(model, x)
    return x * saliency(model, x, t, k, **kw)


def ig_weights(steps, method="gausslegendre"):
    """(alphas (steps,), weights (steps,)) of the path integral over [0, 1], as Captum.

    "gausslegendre" (Captum's default): Gauss-Legendre nodes mapped to [0, 1].
    "riemann_left/right/middle": step 1/steps at the left/right ends or midpoints.
    "riemann_trapezoid": steps points from 0 to 1, weights 1/(steps-1) halved at the
    ends (the exact trapezoid rule; Captum's uses 1/steps, summing to (steps-1)/steps).
    """
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool):
        raise ConfigError(f"steps must be an int, got {steps!r}")
    a, w = _ig_weights(int(steps), method)
    return a.copy(), w.copy()


@lru_cache(maxsize=32)
def _ig_weights(steps, method):
    """ig_weights, cached (legendre nodes cost milliseconds to compute)."""
    if method not in IG_METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(IG_METHODS)}")
    if steps < (2 if method == "riemann_trapezoid" else 1):
        raise ConfigError(f"steps must be >= 1 (2 for the trapezoid), got {steps}")
    if method == "gausslegendre":
        nodes, w = np.polynomial.legendre.leggauss(steps)
        return 0.5 * (nodes + 1.0), 0.5 * w
    if method == "riemann_trapezoid":
        w = np.full(steps, 1.0 / (steps - 1))
        w[[0, -1]] *= 0.5
        return np.linspace(0.0, 1.0, steps), w
    w = np.full(steps, 1.0 / steps)
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}[method]
    return (np.arange(steps) + offset) / steps, w


def integrated_gradients(model, x, t, k, baseline=None, steps=50, *, method="gausslegendre",
                         layer=None, target=None, loss=None, mask=None, h0=None,
                         batch_size=None):
    """Integrated gradients (Sundararajan et al. 2017) of f_b along baseline -> x.

    Returns (attributions (B, T, I), delta (B,)): attributions = (x - baseline) *
    sum_s w_s df/dx(baseline + a_s (x - baseline)); delta = attributions.sum() -
    (f(x) - f(baseline)), Captum's convergence delta. All steps, x and the baseline
    go through one batched forward + backward (steps * B + 2B rows, split only if
    that exceeds batch_size). One-hot x with a zero baseline on the numba GRU/LSTM
    kernels takes the token path (`_token_ids`): the same values, without the dense
    (rows, T, I) inputs and input gradients.
    """
    x = _check_x(model, x)
    base = _baseline(model, x, baseline)
    obj = _Objective(model, x.shape, t, k, layer, target, loss, mask)
    alphas, w = ig_weights(steps, method)
    B, T, I = x.shape
    Th = obj.horizon  # inputs after t cannot matter: run only the first Th steps
    xc, bc = x[:, :Th], base[:, :Th]
    S = len(alphas)
    # row r < S*B: step r // B of sequence r % B; then x, then the baseline
    coef = np.concatenate([np.repeat(alphas, B), np.ones(B), np.zeros(B)]).astype(model.dtype)
    rows = np.tile(np.arange(B), S + 2)

    diff = xc - bc                                                 # (B, Th, I)

    def make(lo, hi):                        # (hi-lo, Th, I): bc + coef * (xc - bc)
        r = rows[lo:hi]
        pts = diff[r]
        pts *= coef[lo:hi, None, None]
        if baseline is not None:
            pts += bc[r]
        return pts

    row_w = np.concatenate([np.repeat(w, B), np.zeros(2 * B)])
    ids = _token_ids(model, x, baseline, base)
    attr = np.zeros((B, T, I))
    if ids is not None:  # rows: token ids scaled by coef; x - 0 is 1 at the hot positions
        idc = np.ascontiguousarray(ids[:, :Th])                    # (B, Th)
        values, avg = _run(model, obj, lambda lo, hi: idc[rows[lo:hi]], (S + 2) * B, rows,
                           h0, batch_size, weights=row_w, scale=coef)  # avg (B, Th)
        np.put_along_axis(attr[:, :Th], idc[..., None], avg[..., None], axis=-1)
    else:
        values, avg = _run(model, obj, make, (S + 2) * B, rows, h0, batch_size,
                           weights=row_w)                          # avg (B, Th, I)
        attr[:, :Th] = avg * (xc - bc)
    f_x, f_b = values[S * B:S * B + B], values[S * B + B:]
    delta = attr.sum((1, 2)) - (f_x - f_b)
    return attr.astype(model.dtype), delta


def occlusion(model, x, t, k, baseline=None, *, layer=None, target=None, loss=None,
              mask=None, h0=None, batch_size=None):
    """f_b(x) - f_b(x with timestep tau replaced by the baseline's), for every tau: (B, T).

    One batched forward pass over all occluded copies (split by batch_size); steps after
    t are not run (their occlusion changes nothing and gives exactly 0).
    """
    x = _check_x(model, x)
    base = _baseline(model, x, baseline)
    obj = _Objective(model, x.shape, t, k, layer, target, loss, mask)
    B, T, I = x.shape
    Th = obj.horizon
    # row r: sequence r % B with timestep r // B - 1 occluded (copy 0 intact)
    rows = np.tile(np.arange(B), Th + 1)

    def make(lo, hi):                                              # (hi-lo, Th, I)
        xs = x[rows[lo:hi], :Th].copy()
        tau = np.arange(lo, hi) // B - 1
        hit = tau >= 0
        xs[hit, tau[hit]] = base[rows[lo:hi][hit], tau[hit]]
        return xs

    values, _ = _run(model, obj, make, (Th + 1) * B, rows, h0, batch_size, grads=False)
    values = values.reshape(Th + 1, B)
    out = np.zeros((B, T), model.dtype)
    out[:, :Th] = (values[0][None] - values[1:]).T
    return out


def gradient_norm_through_time(model, x, target, loss="mse", mask=None, *, h0=None,
                               per_sequence=True):
    """||dL/dh_t||, dL/dh_t = `model.loss_and_grads(...)[1]["h"]` (L the batch's mean
    loss), computed without the parameter gradients.

    per_sequence=True: (B, T), the norm over H for each sequence; False: (T,), the norm
    over the batch and H together.
    """
    g = _loss_grad_h(model, x, target, loss, mask, h0).astype(np.float64)  # (B, T, H)
    axes = 2 if per_sequence else (0, 2)
    return np.sqrt((g * g).sum(axis=axes))


def _loss_grad_h(model, x, target, loss, mask, h0):
    """dL/dh_t (B, T, H) of the batch's mean loss, as `model.loss_and_grads` gives it in
    grads["h"], through the backward pass without parameter gradients."""
    if not model.n_out:
        raise ConfigError("this model has no readout, so it has no loss")
    if not isinstance(loss, str) or loss not in losses.LOSSES:
        raise ConfigError(f"unknown loss {loss!r}; choose mse or xent")
    if model.backend != "numba":
        tr = model.forward(x, h0)
        _, dy = model.loss(tr.y, target, loss, mask)
        return model.backward(tr, dy=dy, params=False)["h"]
    from rnnviewer.engine.kernels import head

    tr = _forward(model, x, h0)          # the loss pass below applies the readout
    B, T = tr.h.shape[:2]
    tgt = losses.check_target(loss, target, (B, T, model.n_out), model.dtype)
    w, count = losses.weights(mask, B, T, model.dtype)
    w = np.ones((B, T), model.dtype) if w is None else np.ascontiguousarray(w)
    _, _, dy = head.readout_loss(tr.h, model.params["W_hy"], model.params["b_y"], loss, tgt,
                                 w, count)
    return model.backward(tr, dy=dy, params=False)["h"]
