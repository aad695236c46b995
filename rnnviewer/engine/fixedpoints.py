"""Fixed and slow points of the dynamics under a constant input (Sussillo & Barak 2013).

q(s) = 1/2 ||F(s, x*) - s||^2 is minimized from many initial states at once with a
batched Levenberg-Marquardt iteration on the residual r(s) = F(s, x*) - s, using the
analytic Jacobian of `dynamics` (all in float64, whatever the model's dtype). The
state s is h (H,) for the RNN and GRU, [h, c] (2H,) for the LSTM. Unlike plain
gradient descent on q, the Gauss-Newton step converges quadratically to unstable
points and saddles as well as to attractors.
"""

from dataclasses import dataclass

import numpy as np

from rnnviewer.engine import dynamics
from rnnviewer.errors import ConfigError

CHUNK_ELEMENTS = 4_000_000      # candidates per LM batch: N * S * S stays under this


@dataclass
class FixedPoint:
    h: np.ndarray                  # (S,) the state; LSTM: h and c concatenated
    q: float                       # 1/2 ||F(h) - h||^2
    eigenvalues: np.ndarray        # (S,) complex, of dF/dstate at h, by decreasing modulus
    kind: str                      # "stable", "unstable" or "saddle"
    unstable_directions: np.ndarray  # (k, S) unit real parts of eigenvectors with |eig| > 1
    jacobian: np.ndarray           # (S, S) dF/dstate at h
    is_slow: bool = False          # q above the tolerance: a slow point, not a fixed point
    count: int = 1                 # how many candidates ended here


class FixedPointList(list):
    """The fixed points (a list), with the slow points in `.slow`.

    Also `.fixed` (the list itself), `.x_star` (I,), `.n_candidates`, `.q_final` (the
    final q of every candidate) and `.stopped` (should_stop() ended the search).
    """

    def __init__(self, fixed=(), slow=(), x_star=None, q_final=None, stopped=False):
        super().__init__(fixed)
        self.slow = list(slow)
        self.x_star = x_star
        self.q_final = np.zeros(0) if q_final is None else q_final
        self.n_candidates = len(self.q_final)
        self.stopped = stopped

    @property
    def fixed(self):
        return list(self)

    def kinds(self):
        """dict kind -> number of fixed points of that kind."""
        out = {"stable": 0, "unstable": 0, "saddle": 0}
        for p in self:
            out[p.kind] += 1
        return out


def classify(eigenvalues):
    """A discrete-time map's point: "stable" if every |eig| < 1, "unstable" if every
    |eig| > 1, "saddle" otherwise."""
    mod = np.abs(np.asarray(eigenvalues))
    if np.all(mod < 1.0):
        return "stable"
    if np.all(mod > 1.0):
        return "unstable"
    return "saddle"


def _lm(model, p, s, x, q_floor, max_iter, should_stop, tick):
    """Batched Levenberg-Marquardt from the states s (N, S); returns (s, q, stopped)."""
    N, S = s.shape
    eye = np.eye(S)
    F, J = dynamics.step_and_jacobian(model, s, x, p)
    r = F - s
    q = 0.5 * np.sum(r * r, axis=1)
    Jr = J - eye
    lam = np.full(N, 1e-3)
    active = np.isfinite(q) & (q > q_floor)
    for _ in range(max_iter):
        if should_stop is not None and should_stop():
            return s, q, True
        idx = np.flatnonzero(active)
        tick(q)
        if idx.size == 0:
            break
        Ja = Jr[idx]
        A = np.matmul(Ja.transpose(0, 2, 1), Ja)                   # (n, S, S)
        g = np.einsum("nij,ni->nj", Ja, r[idx])                   # J^T r
        A[:, np.arange(S), np.arange(S)] += lam[idx, None]
        try:
            d = -np.linalg.solve(A, g[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            d = -g / np.maximum(lam[idx], 1.0)[:, None]
        s_new = s[idx] + d
        F_new, J_new = dynamics.step_and_jacobian(model, s_new, x, p)
        r_new = F_new - s_new
        q_new = 0.5 * np.sum(r_new * r_new, axis=1)
        ok = np.isfinite(q_new) & (q_new < q[idx])
        acc = idx[ok]
        s[acc], r[acc], q[acc], Jr[acc] = s_new[ok], r_new[ok], q_new[ok], J_new[ok] - eye
        lam[acc] = np.maximum(lam[acc] * 0.3, 1e-12)
        lam[idx[~ok]] *= 10.0
        tiny = np.linalg.norm(d, axis=1) <= 1e-13 * (1.0 + np.linalg.norm(s[idx], axis=1))
        done = (q[idx] <= q_floor) | (lam[idx] >= 1e10) | tiny
        active[idx[done]] = False
    return s, q, False


def _dedup(states, q, tol):
    """Greedy clustering from the lowest q: (kept indices, member counts)."""
    order = np.argsort(q, kind="stable")
    kept, counts = [], []
    for i in order:
        if kept:
            dist = np.linalg.norm(states[kept] - states[i], axis=1)
            j = int(np.argmin(dist))
            if dist[j] <= tol:
                counts[j] += 1
                continue
        kept.append(int(i))
        counts.append(1)
    return np.array(kept, dtype=np.int64), counts


def _describe(model, p, s, q, x, count, slow):
    J = dynamics.jacobian(model, s[None], x[None], p)[0]
    ev, vec = np.linalg.eig(J)
    order = np.argsort(-np.abs(ev), kind="stable")
    ev, vec = ev[order], vec[:, order]
    out = (np.abs(ev) > 1.0) & (ev.imag >= 0)       # one of each complex-conjugate pair
    dirs = vec[:, out].real.T
    norms = np.linalg.norm(dirs, axis=1, keepdims=True)
    dirs = dirs / np.where(norms > 0, norms, 1.0)
    return FixedPoint(h=s.copy(), q=float(q), eigenvalues=ev, kind=classify(ev),
                      unstable_directions=dirs, jacobian=J, is_slow=slow, count=count)


def fixed_points(model, x_star=None, initial_states=None, *, n_box=None, box=(-1.0, 1.0),
                 noise=0.0, max_candidates=1024, tol=1e-12, slow_tol=1e-4, dedup_tol=1e-4,
                 slow_dedup_tol=1e-2, max_iter=100, seed=0, progress=None, should_stop=None):
    """Fixed points of s -> F(s, x*) (a FixedPointList; slow points in `.slow`).

    x_star: the constant input (I,), zeros by default. initial_states (N, S): states
    from the network's own trajectories (e.g. a Trace's h, with c appended for the
    LSTM: see `trajectory_states`); n_box more are drawn uniformly from the box
    (default: 256 when no initial_states, else none); Gaussian `noise` (std) is added
    to every start. At most `max_candidates` starts (a random subset) are used.
    A candidate with final q <= tol is a fixed point, tol < q <= slow_tol a slow point;
    others are dropped. Fixed points closer than dedup_tol (Euclidean) are merged,
    keeping the one with the lowest q; slow points, which often lie along a slow
    manifold (a GRU whose z gate is near 1 has a whole continuum of them), are thinned
    to one per slow_dedup_tol. progress(fraction, n) is called as the iteration goes
    (n: candidates converged so far, before deduplication; at the end n is the number
    of fixed points); should_stop() is polled every iteration and ends the search with
    what has converged so far.
    """
    S, I = model.state_size, model.n_in
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    x = np.zeros(I) if x_star is None else np.asarray(x_star, dtype=np.float64).reshape(-1)
    if x.shape != (I,):
        raise ConfigError(f"x_star must have {I} values, got shape {np.shape(x_star)}")
    starts = []
    if initial_states is not None:
        starts.append(dynamics.as_states(model, initial_states))
    if n_box is None:
        n_box = 256 if initial_states is None else 0
    if n_box:
        lo, hi = float(box[0]), float(box[1])
        if not lo < hi:
            raise ConfigError(f"box must be (low, high) with low < high, got {box!r}")
        starts.append(rng.uniform(lo, hi, size=(int(n_box), S)))
    if not starts:
        raise ConfigError("no initial states: pass initial_states or n_box > 0")
    s0 = np.concatenate(starts)
    s0 = s0[np.all(np.isfinite(s0), axis=1)]
    if len(s0) > max_candidates:
        s0 = s0[rng.choice(len(s0), max_candidates, replace=False)]
    if noise:
        s0 = s0 + rng.normal(scale=noise, size=s0.shape)
    p = dynamics.params64(model)
    chunk = max(1, CHUNK_ELEMENTS // (S * S))
    n_chunks = -(-len(s0) // chunk)
    state = {"it": 0, "converged": 0}
    total = n_chunks * (max_iter + 1)

    def tick(q_chunk):
        state["it"] += 1
        if progress is not None and state["it"] % 5 == 0:
            n = state["converged"] + int(np.count_nonzero(q_chunk <= tol))
            progress(min(1.0, state["it"] / total), n)

    finals, qs, stopped = [], [], False
    for lo in range(0, len(s0), chunk):
        s, q, stopped = _lm(model, p, s0[lo:lo + chunk].copy(), x, tol * 1e-6, max_iter,
                            should_stop, tick)
        finals.append(s)
        qs.append(q)
        state["converged"] += int(np.count_nonzero(q <= tol))
        if stopped:
            break
    s = np.concatenate(finals) if finals else np.zeros((0, S))
    q = np.concatenate(qs) if qs else np.zeros(0)
    q = np.where(np.isfinite(q), q, np.inf)
    result = []
    for is_slow, sel, merge in ((False, q <= tol, dedup_tol),
                                (True, (q > tol) & (q <= slow_tol), slow_dedup_tol)):
        idx = np.flatnonzero(sel)
        kept, counts = _dedup(s[idx], q[idx], merge)
        result.append([_describe(model, p, s[idx[k]], q[idx[k]], x, c, is_slow)
                       for k, c in zip(kept, counts)])
    out = FixedPointList(result[0], result[1], x_star=x, q_final=q, stopped=stopped)
    if progress is not None:
        progress(1.0, len(out))
    return out


def trajectory_states(trace, max_states=None, rng=None):
    """Every state of a Trace as (B*T, S) starts for `fixed_points` ([h, c] for an LSTM),
    optionally a random subset of at most max_states."""
    h = np.asarray(trace.h, dtype=np.float64)
    s = h if trace.c is None else np.concatenate([h, np.asarray(trace.c, np.float64)], -1)
    s = s.reshape(-1, s.shape[-1])
    if max_states is not None and len(s) > max_states:
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        s = s[rng.choice(len(s), max_states, replace=False)]
    return s
