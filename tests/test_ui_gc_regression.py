"""A main window dropped and garbage-collected must not crash PySide6.

Plot items that held bound methods of their panel formed reference cycles whose
collection after the window was gone segfaulted (seen with the saliency panel).
"""

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import faulthandler, gc
    faulthandler.enable()
    from PySide6.QtWidgets import QApplication
    app = QApplication([])
    from rnnviewer.training.session import SessionConfig
    from rnnviewer.ui.main_window import MainWindow

    def make():
        MainWindow(SessionConfig(task="flipflop", hidden=4, seq_len=8),
                   interactive=False, restore_settings=False)

    make()
    gc.collect()
    make()
    gc.collect()
    print("alive", flush=True)
""")


def test_dropped_window_collects_without_crash(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "alive" in proc.stdout
