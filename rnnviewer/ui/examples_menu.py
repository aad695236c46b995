"""File > Examples: the guided experiments of rnnviewer/training/examples.py in the window.

Choosing an example asks before throwing away a trained run, loads the example's
settings the way File > New does (controls, then a reset of the worker), shows and
raises the example's panels and opens a non-modal note saying what to look at.
"""

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QMenu, QPushButton, QTextBrowser,
                               QVBoxLayout)

from rnnviewer.training.examples import EXAMPLES, get_example
from rnnviewer.ui import dialogs


def install_examples_menu(window):
    """Add File > Examples to `window` (a MainWindow); returns the ExamplesController."""
    ctl = ExamplesController(window)
    window.examples = ctl
    return ctl


def show_example_panels(window, example):
    """Show the example's panels and bring them to the front, the most important last so
    it ends up on top of its tab group. Unknown panel names are skipped."""
    for name in reversed(example.panels):
        dock = window.docks.get(name)
        if dock is not None:
            dock.show()
            dock.raise_()


def note_html(example):
    """The example's note as HTML: title, text, panels to look at, reference."""
    from html import escape
    from rnnviewer.ui.panels import registered_panels
    titles = {c.object_name: c.title for c in registered_panels()}
    panels = ", ".join(escape(titles.get(p, p)) for p in example.panels)
    ref = f"<p><i>Reference: {escape(example.reference)}</i></p>" if example.reference else ""
    return (f"<h3>{escape(example.title)}</h3><p>{escape(example.text)}</p>"
            f"<p>Panels: {panels}. The effect shows after about {example.steps:,} steps; "
            f"press Space (Train &gt; Start) to train.</p>{ref}")


class ExampleNote(QDialog):
    """A non-modal window with the example's text; it stays open while training runs."""

    def __init__(self, parent):
        super().__init__(parent)
        self.setObjectName("example_note")
        self.setModal(False)
        self.setWindowFlag(Qt.WindowType.Tool, True)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.start_button = QPushButton("Start training")
        self.buttons.addButton(self.start_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.close)
        lay = QVBoxLayout(self)
        lay.addWidget(self.browser)
        lay.addWidget(self.buttons)
        self.resize(460, 300)

    def set_example(self, example):
        self.setWindowTitle(f"Example: {example.title}")
        self.browser.setHtml(note_html(example))


class ExamplesController(QObject):
    """Owns the Examples menu and the note of one MainWindow."""

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.current = None               # the Example last loaded
        self.note = None
        self.menu = self._build_menu()

    def _build_menu(self):
        w = self.window
        file_menu = w.menuBar().actions()[0].menu()
        menu = QMenu("E&xamples", file_menu)
        menu.setObjectName("examples_menu")
        menu.setToolTipsVisible(True)
        for ex in EXAMPLES:
            a = QAction(ex.title, menu)
            a.setData(ex.name)
            tip = ex.text if len(ex.text) < 300 else ex.text[:297] + "..."
            a.setToolTip(tip)
            a.setStatusTip(f"Load the example '{ex.name}': its task, cell, settings and panels")
            a.triggered.connect(self._on_example_triggered)
            menu.addAction(a)
        # After File > Open Recent when it is there, else at the end of the File menu.
        actions = file_menu.actions()
        recent = getattr(w, "recent_menu", None)
        before = None
        if recent is not None and recent.menuAction() in actions:
            i = actions.index(recent.menuAction())
            before = actions[i + 1] if i + 1 < len(actions) else None
        if before is None:
            file_menu.addMenu(menu)
        else:
            file_menu.insertMenu(before, menu)
        return menu

    @Slot()
    def _on_example_triggered(self):
        self.load(self.sender().data())

    def load(self, example, ask=True):
        """Load `example` (an Example or its name): settings, panels, note. False if the
        user chose to keep the trained run."""
        ex = get_example(example) if isinstance(example, str) else example
        w = self.window
        config = ex.session_config()
        trained = w.snapshot is not None and w.snapshot.step > 0
        if ask and trained and w.interactive and \
                not dialogs.confirm_reset(w, "the settings to the example's"):
            return False
        w.controls.set_config(config)
        if w.worker is None:
            w.config = config            # start() will use it
        else:
            w.worker.set_running(False)  # as File > New: the example starts paused
            w._reset(config)
        w.current_path = ""
        w._update_title()
        show_example_panels(w, ex)
        self.current = ex
        self.show_note(ex)
        return True

    def show_note(self, example):
        if self.note is None:
            self.note = ExampleNote(self.window)
            self.note.start_button.clicked.connect(self._on_note_start_clicked)
        self.note.set_example(example)
        if self.window.interactive:
            self.note.show()
            self.note.raise_()

    @Slot()
    def _on_note_start_clicked(self):
        w = self.window
        if w.worker is not None and not w.running:
            w._on_start_triggered()


def run_screenshot(args, overrides, example, fast_exit=False):
    """`rnnviewer --screenshot PNG --example NAME`: the example's settings (command-line
    flags override them), its panels raised, `args.steps` steps, then the pictures."""
    import sys

    from rnnviewer.errors import RnnviewerError
    from rnnviewer.training.session import SessionConfig
    from rnnviewer.ui.main_window import MainWindow
    from rnnviewer.ui.runner import (finish, make_app, run_panel_jobs, settle_imports,
                                     train_offscreen, wait_until)
    try:
        config = SessionConfig.from_dict(overrides).validate()
    except RnnviewerError as e:
        print(f"rnnviewer: {e}", file=sys.stderr)
        return 2
    make_app()
    if fast_exit:
        settle_imports()
    win = MainWindow(config, interactive=False, restore_settings=False)
    win.all_analyses = bool(args.export_panels)   # every exported picture complete
    win.resize(*args.size)
    win.show()
    code = 0
    try:
        wait_until(lambda: False, 0.05)
        show_example_panels(win, example)
        wait_until(lambda: False, 0.05)
        err = train_offscreen(win, example.steps if args.steps is None else args.steps)
        if not err and not run_panel_jobs(
                win, win.open_panel_names() if args.export_panels else example.panels):
            err = "timed out waiting for the panels' computations"
        if err:
            print(f"rnnviewer: {err}", file=sys.stderr)
            code = 1
        else:
            for p in win.panels.values():
                p.drawn = None
                p.redraw_now(raise_errors=False)
            wait_until(lambda: False, 0.1)
            if args.export_panels:
                paths = win.export_panels(args.export_panels)
                print(f"saved {len(paths)} panel images in {args.export_panels}")
            if args.screenshot:
                if win.grab().save(args.screenshot):
                    print(f"saved {args.screenshot} (example {example.name}, "
                          f"step {win.snapshot.step})")
                else:
                    print(f"rnnviewer: {args.screenshot}: could not write the image",
                          file=sys.stderr)
                    code = 1
    finally:
        win.close()
    return finish(code, fast_exit)
