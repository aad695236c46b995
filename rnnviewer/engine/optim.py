"""SGD and Adam with torch.optim's arithmetic; global-norm gradient clipping."""

import math

import numpy as np

from rnnviewer.errors import ConfigError

PARAM_NAMES = ("W_xh", "W_hh", "b_xh", "b_hh", "W_hy", "b_y")


def clip_grad_norm(grads, max_norm):
    """Scale the parameter gradients in place to global norm <= max_norm; return the norm before."""
    keys = [k for k in PARAM_NAMES if k in grads]
    total = float(np.sqrt(sum(float(np.sum(grads[k].astype(np.float64) ** 2)) for k in keys)))
    if max_norm is not None and max_norm > 0:
        coef = max_norm / (total + 1e-6)
        if coef < 1.0:
            for k in keys:
                grads[k] *= grads[k].dtype.type(coef)
    return total


def check_number(name, value, low=0.0, high=math.inf, low_open=False, high_open=False):
    """`value` as a finite float in the given range; ConfigError naming it otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or v < low or v > high or (low_open and v == low) \
            or (high_open and v == high):
        lo, hi = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
        raise ConfigError(f"{name} must be a finite number in {lo}{low:g}, {high:g}{hi}, got {v}")
    return v


class Optimizer:
    """Updates `params` (a dict of arrays) in place from a grads dict with the same keys."""

    def __init__(self, params, lr):
        self.params = params
        self.lr = check_number("learning rate", lr)
        self.t = 0

    def keys(self):
        return [k for k in self.params if k in PARAM_NAMES]

    def state_dict(self):
        """Flat dict of arrays (and scalars as 0-d arrays): safe to store in .npz."""
        return {"t": np.asarray(self.t), "lr": np.asarray(self.lr)}

    def load_state_dict(self, state):
        t = check_number("optimizer step count", np.asarray(state["t"]).item())
        if t != int(t):
            raise ConfigError(f"optimizer step count must be an integer, got {t}")
        self.lr = check_number("learning rate", np.asarray(state["lr"]).item())
        self.t = int(t)


class SGD(Optimizer):
    """torch.optim.SGD(lr, momentum) with dampening 0, no weight decay, no Nesterov."""

    name = "sgd"

    def __init__(self, params, lr, momentum=0.0):
        super().__init__(params, lr)
        self.momentum = check_number("momentum", momentum)
        self.buf = {k: np.zeros_like(params[k]) for k in self.keys()} if momentum else {}

    def step(self, grads):
        self.t += 1
        for k in self.keys():
            g = grads[k]
            if self.momentum:
                b = self.buf[k]
                b *= b.dtype.type(self.momentum)
                b += g
                g = b
            self.params[k] -= self.params[k].dtype.type(self.lr) * g

    def state_dict(self):
        s = super().state_dict()
        s["momentum"] = np.asarray(self.momentum)
        s.update({f"buf/{k}": v for k, v in self.buf.items()})
        return s

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.momentum = float(state.get("momentum", self.momentum))
        for k in self.keys():
            if f"buf/{k}" in state:
                self.buf[k] = np.array(state[f"buf/{k}"], dtype=self.params[k].dtype)


class Adam(Optimizer):
    """torch.optim.Adam(lr, betas, eps), no weight decay, no amsgrad."""

    name = "adam"

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        if np.shape(betas) != (2,):
            raise ConfigError(f"betas must be two numbers, got {betas!r}")
        self.betas = tuple(check_number(f"beta{i + 1}", b, 0.0, 1.0, high_open=True)
                           for i, b in enumerate(betas))
        self.eps = check_number("eps", eps)
        self.m = {k: np.zeros_like(params[k]) for k in self.keys()}
        self.v = {k: np.zeros_like(params[k]) for k in self.keys()}

    def step(self, grads):
        self.t += 1
        b1, b2 = self.betas
        bc1 = 1.0 - b1 ** self.t
        bc2_sqrt = np.sqrt(1.0 - b2 ** self.t)
        for k in self.keys():
            g, m, v, p = grads[k], self.m[k], self.v[k], self.params[k]
            ty = p.dtype.type
            m *= ty(b1)
            m += ty(1.0 - b1) * g
            v *= ty(b2)
            v += ty(1.0 - b2) * g * g
            denom = np.sqrt(v) / ty(bc2_sqrt) + ty(self.eps)
            p -= ty(self.lr / bc1) * m / denom

    def state_dict(self):
        s = super().state_dict()
        s["betas"] = np.asarray(self.betas)
        s["eps"] = np.asarray(self.eps)
        s.update({f"m/{k}": v for k, v in self.m.items()})
        s.update({f"v/{k}": v for k, v in self.v.items()})
        return s

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.betas = tuple(float(b) for b in state.get("betas", self.betas))
        self.eps = float(state.get("eps", self.eps))
        for k in self.keys():
            if f"m/{k}" in state:
                self.m[k] = np.array(state[f"m/{k}"], dtype=self.params[k].dtype)
                self.v[k] = np.array(state[f"v/{k}"], dtype=self.params[k].dtype)


OPTIMIZERS = {"sgd": SGD, "adam": Adam}
