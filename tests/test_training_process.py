"""The training process (training/process.py) without Qt: its outbox, a whole run over
the pipe, and its end when the window's process goes."""

import pickle
import threading
import time

from rnnviewer.training.process import Outbox, TrainingProcess
from rnnviewer.training.session import SessionConfig

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
