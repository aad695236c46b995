"""stop_all: every training thread ends before the process tears Qt down."""

from rnnviewer.ui.worker import TrainingWorker, WorkerThread, stop_all


def test_stop_all_ends_every_training_thread(qtbot):
    threads = [WorkerThread(TrainingWorker()) for _ in range(2)]
    for t in threads:
        t.start()
    qtbot.waitUntil(lambda: all(t.is_running() for t in threads), timeout=5000)
    assert stop_all(timeout=10)
    assert not any(t.is_running() for t in threads)
