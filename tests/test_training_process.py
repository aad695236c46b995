"""The training process (training/process.py) without Qt: its outbox, a whole run over
the pipe, and its end when the window's process goes."""

import dataclasses
import pickle
import threading
import time

import numpy as np

from rnnviewer.training.process import Outbox, TrainingProcess
from rnnviewer.training.session import SessionConfig, TrainingSession
from rnnviewer.training.snapshot import History, HistoryJoiner, HistoryTail, frozen_map

SMALL = SessionConfig(task="sine", hidden=8, batch=4, seq_len=12, probe_size=2, val_every=5)


class HeldPipe:
    """A connection whose first send waits until `release` is set."""

    def __init__(self):
        self.sent = []
        self.release = threading.Event()
        self.sending = threading.Event()

    def send_bytes(self, data):
        self.sending.set()
        self.release.wait(10)
        self.sent.append(pickle.loads(data))


def test_outbox_keeps_the_order_and_drops_snapshots_a_newer_one_superseded():
    pipe = HeldPipe()
    box = Outbox(pipe)
    box.put("snapshot_ready", 1)
    assert pipe.sending.wait(10)          # the first one is on its way: it goes out
    box.put("snapshot_ready", 2)          # superseded by 3 before it could be sent
    box.put("snapshot_ready", 3)
    box.put("notice", "hello")
    box.put("snapshot_ready", 4)          # not superseded: the notice is between them
    pipe.release.set()
    box.close()
    assert pipe.sent == [("snapshot_ready", (1,)), ("snapshot_ready", (3,)),
                         ("notice", ("hello",)), ("snapshot_ready", (4,))]


def test_snapshots_carry_only_new_history_rows_and_the_joiner_makes_them_whole():
    base = TrainingSession(SMALL).snapshot()
    runs = {1: History(), 2: History()}

    def snap(run, steps, vals=0):
        h = runs[run]
        for _ in range(steps):
            n = len(h)
            h.append(n + 1, 1.0 / (n + 1), 0.5 * n, 0.01)
        for _ in range(vals):
            h.append_val(len(h), 2.0 * len(h))
        return dataclasses.replace(base, run_id=run, history=frozen_map(h.arrays(), copy=False))

    pipe = HeldPipe()
    box = Outbox(pipe)
    sent = [snap(1, 5, 1)]
    box.put("snapshot_ready", sent[0])
    assert pipe.sending.wait(10)          # on its way; the next two wait behind it
    sent.append(snap(1, 3))               # superseded: its rows must come with the next
    box.put("snapshot_ready", sent[-1])
    sent.append(snap(1, 4, 2))
    box.put("snapshot_ready", sent[-1])
    pipe.release.set()
    box.close(timeout=10)
    box = Outbox(pipe)                    # (a fresh outbox: the same pipe, sending freely)
    for s in (snap(1, 2), snap(2, 3, 1), snap(2, 1)):
        sent.append(s)
        box.put("snapshot_ready", s)
        time.sleep(0.05)
    box.close(timeout=10)
    tails = [args[0].history for _, args in pipe.sent]
    assert all(isinstance(t, HistoryTail) for t in tails)
    # the third was put while the first was still on its way: it repeats the first's rows
    # (the parent may not have them yet); the second outbox knew nothing of what the
    # first sent and starts over; run 2 starts over; run 2's second snapshot sends one row
    assert [t.start for t in tails] == [(0, 0), (0, 0), (0, 0), (0, 0), (3, 1)]
    assert len(tails[-1].rows["step"]) == 1 and len(tails[-1].rows["val_step"]) == 0
    joiner = HistoryJoiner()
    joined = [joiner.join(args[0]) for _, args in pipe.sent]
    want = [sent[0], sent[2], sent[3], sent[4], sent[5]]
    for got, ref in zip(joined, want):
        assert got.run_id == ref.run_id
        assert set(got.history) == set(ref.history)
        for k, v in ref.history.items():
            np.testing.assert_array_equal(got.history[k], v)
            assert not got.history[k].flags.writeable
    # what an earlier joined snapshot holds never changes as later rows come in
    np.testing.assert_array_equal(joined[0].history["step"], np.arange(1, 6))


def test_a_tail_after_a_gap_keeps_its_rows_and_is_not_an_error():
    h = History()
    for i in range(3):
        h.append(i + 1, 1.0, 1.0, 0.1)
    assert not h.extend_from((5, 0), {"step": np.array([6.0]), "train_loss": np.ones(1),
                                      "grad_norm": np.ones(1), "lr": np.ones(1),
                                      "val_step": np.zeros(0), "val_loss": np.zeros(0)})
    assert len(h) == 3                     # nothing appended: the caller decides


def events_until(proc, done, timeout=120):
    seen = []
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        for event, args in proc.receive(0.2):
            seen.append((event, args))
            if done(event, args):
                return seen
    raise AssertionError(f"timed out; saw {[e for e, _ in seen]}")


def test_a_run_over_the_pipe_then_a_clean_quit(tmp_path):
    proc = TrainingProcess()
    try:
        proc.send("configure", SMALL)
        proc.send("steps", 3)
        seen = events_until(proc, lambda e, a: e == "snapshot_ready" and a[0].step >= 3)
        names = [e for e, _ in seen]
        assert names[0] == "session_changed" and seen[0][1][0] == SMALL
        snap = seen[-1][1][0]
        assert snap.run_id == 1 and snap.probe.h.shape[-1] == 8
        assert not snap.params["W_hh"].flags.writeable        # read-only, as in-process
        assert list(snap.history["step"]) == list(range(1, snap.step + 1))   # joined whole
        path = tmp_path / "s.npz"
        proc.send("final_save", str(path))
    finally:
        assert proc.stop(timeout=30)        # ended by itself, after the final save
    assert proc.process.exitcode == 0 and path.is_file()


def test_the_process_ends_when_the_window_process_goes():
    proc = TrainingProcess()
    proc.send("configure", SMALL)
    events_until(proc, lambda e, a: e == "snapshot_ready")
    proc.conn.close()                       # what the window's death looks like from there
    proc.process.join(30)
    assert not proc.process.is_alive()
