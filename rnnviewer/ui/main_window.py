"""The main window: controls and panels in docks, menus, status bar, and the worker.

Training runs in a process of its own, behind a TrainingWorker on its own QThread
(ui/worker.py). Worker signals
reach only @Slot methods of this window (GUI thread). Each panel keeps the newest
snapshot and redraws on its own timer; this window only hands snapshots on.
"""

import time
from pathlib import Path

from PySide6.QtCore import QByteArray, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow

from rnnviewer.training.session import SessionConfig
from rnnviewer.ui import dialogs, settings
from rnnviewer.ui.autosave import Autosaver
from rnnviewer.ui.controls import ControlsWidget, effective_options
from rnnviewer.ui.examples_menu import install_examples_menu
from rnnviewer.ui.gcguard import GuiThreadGC
from rnnviewer.ui.panels import UnitSelection, registered_panels, scheduler
from rnnviewer.ui.panels._schedule import DEFAULT_DRAW_PRIORITY, DRAW_PRIORITIES
from rnnviewer.ui.panels._perf import TextLine
from rnnviewer.ui.worker import TrainingWorker, WorkerThread

SESSION_FILTER = "rnnviewer sessions (*.npz);;All files (*)"
_FIELD_NAMES = {"task": "the task", "task_options": "the task options",
                "seq_len": "the sequence length", "cell": "the cell type",
                "hidden": "the hidden size", "seed": "the seed", "optimizer": "the optimizer",
                "dtype": "the number type"}


def import_weights_function():
    """rnnviewer.engine.import_weights if the engine provides it, else None."""
    try:
        from rnnviewer import engine
    except ImportError:
        return None
    return getattr(engine, "import_weights", None)


class MainWindow(QMainWindow):
    """The application window. `start()` launches training after the window shows."""

    # TrainingSession or a subclass (importable by name: it is built in the training
    # process); None: TrainingSession. Tests set it to inject faults.
    session_factory = None

    def __init__(self, config=None, *, interactive=True, restore_settings=True, autosave=False):
        super().__init__()
        # cyclic GC only from a GUI-thread timer (Qt objects), never in the middle of
        # building the panels: a collection inside a pyqtgraph item's __init__ segfaulted
        self.gc_guard = GuiThreadGC(self)
        self.setObjectName("main_window")
        self.interactive = interactive
        self.errors = []              # (message, details) of every error shown
        self.selection = UnitSelection(self)
        last = settings.load_json("session/last_config") if restore_settings else None
        if config is None:
            try:
                config = SessionConfig.from_dict(last).validate() if last else SessionConfig()
            except Exception:     # settings from an older or damaged install
                config = SessionConfig()
        self.config = config          # the config of the running session
        self.current_path = ""
        self.snapshot = None
        self.running = False
        self.compiling = False
        self._message_before_compile = ""   # the status message a compile message covered
        self.compile_seconds = None
        self.saved_step = None        # step of the last save/open (None: never saved)
        self._fell_back = False       # the first session failed and defaults were used
        self._sent_requests = None    # analysis requests last sent to the worker
        self.all_analyses = False     # True: run analyses for hidden panels too (self-test)
        self.worker = None
        self.worker_thread = None
        self.panels = {}              # object_name -> Panel
        self.docks = {}               # object_name -> QDockWidget
        self.resize(1400, 880)
        self.setDockNestingEnabled(True)
        # The controls run the full height on the left; bottom panels stay right of them.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.TopLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setAcceptDrops(True)
        self._build_actions()
        self._build_controls()
        self._build_panels()
        self._build_menus()
        install_examples_menu(self)     # File > Examples (ui/examples_menu.py)
        self._build_status()
        self._default_state = None   # taken at the first show, once the docks have sizes
        self._restore_settings = restore_settings
        if restore_settings:
            geo = settings.settings().value("window/geometry")
            if isinstance(geo, QByteArray):
                self.restoreGeometry(geo)
            self.controls.set_speed_value(settings.get_float("session/speed", 0.0))
            self.set_draw_priority(settings.settings().value("view/draw_priority"))
        # autosave + crash restore (ui/autosave.py): the application's window only
        self.autosaver = Autosaver(self) if autosave else None
        scheduler().add_training_hint(self.trains_flat_out)
        self._status_timer = QTimer(self)
        self._status_timer.setInterval(100)
        self._status_timer.timeout.connect(self._on_status_timer_timeout)
        self._status_timer.start()
        self._update_title()

    # ------------------------------------------------------------ construction
    def _action(self, text, slot, shortcut=None, tip=None, shortcuts=None):
        a = QAction(text, self)
        if shortcuts:
            a.setShortcuts([QKeySequence(s) for s in shortcuts])
        elif shortcut:
            a.setShortcut(QKeySequence(shortcut))
        if tip:
            a.setToolTip(tip)
            a.setStatusTip(tip)
        a.triggered.connect(slot)
        self.addAction(a)   # shortcuts work even when the menu bar is hidden
        return a

    def _build_actions(self):
        A = self._action
        self.act_new = A("&New", self._on_new_triggered, QKeySequence.StandardKey.New,
                         "A new session with default settings")
        self.act_open = A("&Open…", self._on_open_triggered, QKeySequence.StandardKey.Open,
                          "Open a saved session (.npz)")
        self.act_save = A("&Save", self._on_save_triggered, QKeySequence.StandardKey.Save,
                          "Save the session: model, optimizer state, task, loss history")
        self.act_save_as = A("Save &As…", self._on_save_as_triggered, "Ctrl+Shift+S",
                             "Save the session to a new file")
        self.act_import = A("&Import weights…", self._on_import_triggered, None,
                            "Train on from weights trained elsewhere: a torch RNN/GRU/LSTM "
                            "state dict (.safetensors, .npz, .pt) for the current task")
        if import_weights_function() is None:
            self.act_import.setEnabled(False)
            self.act_import.setToolTip("Importing weights needs rnnviewer.engine.import_weights, "
                                       "which this build does not have yet")
            self.act_import.setStatusTip(self.act_import.toolTip())
        self.act_export_all = A("All panels as &PNG…", self._on_export_all_triggered, "Ctrl+E",
                                "Save one PNG per visible panel into a folder")
        self.act_export_window = A("&Window screenshot…", self._on_export_window_triggered,
                                   None, "Save a PNG of the whole window")
        self.act_quit = A("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit rnnviewer")
        self.act_start = A("&Start", self._on_start_triggered, "Space",
                           "Start or pause training (Space)")
        self.act_start.setCheckable(True)
        self.act_step = A("S&tep", self._on_step_triggered, None,
                          "Make one training step, then pause (Right arrow)",
                          shortcuts=["Right", "Ctrl+."])
        self.act_reset = A("&Reset", self._on_reset_triggered, "Ctrl+R",
                           "Restart training from step 0 with the current settings (Ctrl+R)")
        self.act_reset_layout = A("Reset &layout", self._on_reset_layout_triggered,
                                  "Ctrl+Shift+R", "Put every panel back where it started")
        self.act_shortcuts = A("&Keyboard shortcuts", self._on_shortcuts_triggered, "F1")
        self.act_about = A("&About rnnviewer", self._on_about_triggered)
        for a in (self.act_start, self.act_step, self.act_reset):
            a.setShortcutContext(Qt.ShortcutContext.WindowShortcut)

    def _build_controls(self):
        self.controls = ControlsWidget(self.config)
        self.controls.set_actions(self.act_start, self.act_step, self.act_reset)
        self.controls.edited.connect(self._on_controls_edited)
        dock = QDockWidget("Controls", self)
        dock.setObjectName("dock_controls")
        dock.setWidget(self.controls)
        dock.setMinimumWidth(250)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.controls_dock = dock

    def _build_panels(self):
        """One dock per registered panel. Default layout: panels with `own_row` get a dock
        of their own; the others of each area share one tab group (`tab_with` overrides).
        Panels are lazy: each builds its plots when first shown (a tab behind another, or a
        closed dock, costs nothing at start-up)."""
        leaders = {}
        for cls in registered_panels():
            panel = cls(self.selection, lazy=True)
            dock = QDockWidget(cls.title, self)
            dock.setObjectName(f"dock_{cls.object_name}")
            dock.setWidget(panel)
            dock.setToolTip(cls.tooltip)
            dock.visibilityChanged.connect(self._on_dock_visibility_changed)
            self.addDockWidget(cls.default_area, dock)
            target = self.docks.get(cls.tab_with) if cls.tab_with else None
            if target is None and not cls.own_row:
                target = leaders.get(cls.default_area)
                leaders.setdefault(cls.default_area, dock)
            if target is not None:
                self.tabifyDockWidget(target, dock)
            if not cls.default_visible:
                dock.hide()
            self.panels[cls.object_name] = panel
            self.docks[cls.object_name] = dock
        for dock in leaders.values():   # the first panel of each group in front
            dock.raise_()
        self._row_docks = [d for n, d in self.docks.items() if self.panels[n].own_row]

    @Slot(bool)
    def _on_dock_visibility_changed(self, visible):
        """A dock came on screen (shown, or its tab raised): build its lazy panel now, so
        that it paints complete."""
        dock = self.sender()
        panel = dock.widget() if visible and dock is not None else None
        if panel is not None and hasattr(panel, "ensure_built"):
            panel.ensure_built()

    def showEvent(self, event):
        super().showEvent(event)
        if self._default_state is None:
            self._size_docks()
            self._default_state = self.saveState()
            if self._restore_settings:
                self._restore_window()

    def _size_docks(self):
        """Controls about 310 px wide, the panels take the rest."""
        right = [d for d in self.docks.values() if not d.isHidden() and
                 self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        docks = [self.controls_dock] + right[:1]
        self.resizeDocks(docks, [310, max(self.width() - 310, 300)][:len(docks)],
                         Qt.Orientation.Horizontal)
        # Heights: own-row panels (the curves) small, the tab groups share the rest.
        bottom = [d for d in self.docks.values() if not d.isHidden() and
                  self.dockWidgetArea(d) == Qt.DockWidgetArea.BottomDockWidgetArea]
        rows = [d for d in right if d in self._row_docks]
        groups = [d for d in right if d not in self._row_docks][:1] + bottom[:1]
        if rows or groups:
            h = max(self.height() - 80, 300)
            top = min(260, h // 3) if groups else h // max(len(rows), 1)
            rest = (h - top * len(rows)) // max(len(groups), 1)
            self.resizeDocks(rows + groups, [top] * len(rows) + [rest] * len(groups),
                             Qt.Orientation.Vertical)

    def _build_menus(self):
        mb = self.menuBar()
        f = mb.addMenu("&File")
        f.addActions([self.act_new, self.act_open])
        self.recent_menu = f.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(self._on_recent_menu_about_to_show)
        self._fill_recent_menu()
        f.addSeparator()
        f.addActions([self.act_save, self.act_save_as])
        f.addSeparator()
        f.addAction(self.act_import)
        export = f.addMenu("&Export")
        export.addActions([self.act_export_all, self.act_export_window])
        export.addSeparator()
        for name, panel in self.panels.items():
            sub = export.addMenu(panel.title)
            a = sub.addAction("Image (PNG, SVG)…")
            a.setData(name)
            a.triggered.connect(self._on_export_image_triggered)
            a = sub.addAction("Data (CSV, NPZ)…")
            a.setData(name)
            a.triggered.connect(self._on_export_data_triggered)
        f.addSeparator()
        f.addAction(self.act_quit)
        v = mb.addMenu("&View")
        v.addAction(self.controls_dock.toggleViewAction())
        v.addSeparator()
        for name, dock in self.docks.items():
            toggle = dock.toggleViewAction()
            toggle.setStatusTip(f"Show or hide the {dock.windowTitle()} panel")
            v.addAction(toggle)
        v.addSeparator()
        self._build_draw_priority_menu(v.addMenu("Panels &while training"))
        v.addAction(self.act_reset_layout)
        t = mb.addMenu("&Train")
        t.addActions([self.act_start, self.act_step, self.act_reset])
        h = mb.addMenu("&Help")
        h.addActions([self.act_shortcuts, self.act_about])

    def _build_draw_priority_menu(self, menu):
        """How much of the cores the panels may take while training runs flat out: on
        a machine with few cores every frame is taken from training (_schedule.py)."""
        menu.setToolTipsVisible(True)
        group = QActionGroup(self)
        self.draw_priority_actions = {}
        for name, (text, _, tip) in DRAW_PRIORITIES.items():
            a = menu.addAction(text)
            a.setCheckable(True)
            a.setToolTip(tip)
            a.setStatusTip(tip)
            a.setData(name)
            group.addAction(a)
            self.draw_priority_actions[name] = a
        group.triggered.connect(self._on_draw_priority_triggered)
        self.set_draw_priority(DEFAULT_DRAW_PRIORITY)

    def set_draw_priority(self, name):
        """Choose DRAW_PRIORITIES[name] (an unknown name: the default). Returns the name."""
        if not isinstance(name, str) or name not in DRAW_PRIORITIES:
            name = DEFAULT_DRAW_PRIORITY
        self.draw_priority = name
        self.draw_priority_actions[name].setChecked(True)
        scheduler().busy_budget = DRAW_PRIORITIES[name][1]
        return name

    @Slot(QAction)
    def _on_draw_priority_triggered(self, action):
        self.set_draw_priority(action.data())

    def _build_status(self):
        # Fixed-width text fields: their text changes ten times a second, and a QLabel
        # would re-lay out the status bar and the whole window each time.
        sb = self.statusBar()
        fields = (("status_step", "step 0", "step 10,000,000", "Training steps done"),
                  ("status_loss", "loss –", "loss -0.0001234", "Training loss of the last step"),
                  ("status_val", "val –", "val -0.0001234", "Loss on the fixed validation batch"),
                  ("status_speed", "paused", "12,345 steps/s", "Training speed"),
                  ("status_kernels", "", "compiling kernels…", "State of the compiled numba kernels"))
        for attr, text, sample, tip in fields:
            w = TextLine(text, tip, sample=sample)
            setattr(self, attr, w)
            sb.addPermanentWidget(w)

    # ------------------------------------------------------------ worker
    def start(self, path=None):
        """Create the worker thread and the first session (from `path` if given)."""
        if self.worker_thread is not None:
            return
        w = TrainingWorker(self.session_factory)
        w.snapshot_ready.connect(self._on_worker_snapshot_ready)
        w.session_changed.connect(self._on_worker_session_changed)
        w.running_changed.connect(self._on_worker_running_changed)
        w.compile_started.connect(self._on_worker_compile_started)
        w.compile_finished.connect(self._on_worker_compile_finished)
        w.diverged.connect(self._on_worker_diverged)
        w.saved.connect(self._on_worker_saved)
        w.notice.connect(self._on_worker_notice)
        w.errored.connect(self._on_worker_errored)
        self.worker = w
        self.worker_thread = WorkerThread(w)
        w.set_live(speed=self.controls.speed_value())
        self._sent_requests = None
        self._send_analysis_requests()
        if path:
            w.open_session(path, fallback=self.config)   # the config if it cannot be opened
        else:
            w.configure(self.config)
        self.worker_thread.start()

    @Slot()
    def start_pending(self):
        """start() with the file given on the command line (`pending_path`), if any;
        else, after a crash, with the autosaved session if the user wants it back."""
        path = getattr(self, "pending_path", None)
        if self.autosaver is not None:
            restore = self.autosaver.restore_path()
            path = path or restore
        self.start(path)

    def stop(self, timeout=0.8):
        """Stop the worker thread (returns within about `timeout` s)."""
        if self.worker_thread is None:
            return True
        done = self.worker_thread.stop(timeout)
        self.worker_thread = None
        return done

    def trains_flat_out(self):
        """Training runs with no steps/s cap (the redraw scheduler's budget, _schedule.py)."""
        return self.running and self.controls.speed_value() <= 0

    # ------------------------------------------------------------ worker slots
    @Slot(object)
    def _on_worker_snapshot_ready(self, snap):
        self.snapshot = snap
        for p in self.panels.values():
            p.update_snapshot(snap)

    @Slot(object, str)
    def _on_worker_session_changed(self, config, path):
        if self.autosaver is not None and self.autosaver.is_autosave(path):
            path = ""                # restored: untitled, never saved over the autosave
            self.statusBar().showMessage("Restored the autosaved session", 10000)
        self.config = config
        self.controls.set_config(config)
        self.current_path = path
        self.saved_step = None
        if path:
            self.saved_step = -1     # set from the first snapshot's step below
            settings.add_recent_file(path)
            self._fill_recent_menu()
            self.statusBar().showMessage(f"Opened {path}", 5000)
        self._update_title()

    @Slot(bool)
    def _on_worker_running_changed(self, running):
        self.running = running
        self.act_start.setChecked(running)
        self.act_start.setText("&Pause" if running else "&Start")

    @Slot()
    def _on_worker_compile_started(self):
        self.compiling = True
        self.status_kernels.setText("compiling kernels…")
        self._message_before_compile = self.statusBar().currentMessage()   # "Restored…"
        self.statusBar().showMessage("Compiling kernels (only the first time)…")

    @Slot(float)
    def _on_worker_compile_finished(self, seconds):
        self.compiling = False
        self.compile_seconds = seconds
        self.status_kernels.setText("kernels ready")
        self.status_kernels.setToolTip(f"Kernels compiled or loaded in {seconds:.1f} s")
        before = self._message_before_compile
        if before:      # what the compile message covered stays readable
            self.statusBar().showMessage(f"{before} · kernels ready ({seconds:.1f} s)", 10000)
        else:
            self.statusBar().showMessage(
                f"Kernels ready ({seconds:.1f} s). Press Space to train.", 5000)

    @Slot(str)
    def _on_worker_diverged(self, message):
        self._error("Training diverged", message)

    @Slot(str)
    def _on_worker_saved(self, path):
        self.current_path = path
        self.saved_step = self.snapshot.step if self.snapshot else 0
        settings.add_recent_file(path)
        self._fill_recent_menu()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        self._update_title()

    @Slot(str)
    def _on_worker_notice(self, text):
        self.statusBar().showMessage(text, 15000)

    @Slot(str, str)
    def _on_worker_errored(self, message, details):
        self.controls.set_config(self.config)   # undo edits that did not take
        if self.snapshot is None and not self._fell_back:
            # The first session could not be made (e.g. remembered settings naming a file
            # that is gone): start from the defaults so the window is usable.
            self._fell_back = True
            self.config = SessionConfig()
            self.controls.set_config(self.config)
            self.worker.configure(self.config)
        self._error("rnnviewer", message, details)

    def _error(self, title, message, details=""):
        self.errors.append((message, details))
        if self.interactive:
            dialogs.show_error(self, title, message, details)
        else:
            import sys
            print(f"rnnviewer: {message}", file=sys.stderr)

    # ------------------------------------------------------------ status
    def analysis_requests(self):
        """name -> options of the worker-side analyses that visible panels need."""
        out = {}
        for panel in self.panels.values():
            names = getattr(panel, "analyses", ())
            if names and (panel.is_shown() or self.all_analyses):
                opts = panel.analysis_options() if hasattr(panel, "analysis_options") else {}
                for name in names:
                    out[name] = dict(opts or {})
        return out

    def _send_analysis_requests(self):
        try:
            requests = self.analysis_requests()
        except Exception:          # a panel's options must not stop the window
            return
        if requests != self._sent_requests and self.worker is not None:
            self._sent_requests = requests
            self.worker.set_analysis_requests(requests)

    @Slot()
    def _on_status_timer_timeout(self):
        self._send_analysis_requests()
        s = self.snapshot
        if s is None:
            if not self.compiling and self.worker is None:
                self.status_kernels.setText("")
            return
        if self.saved_step == -1:
            self.saved_step = s.step
        self.status_step.setText(f"step {s.step:,}")
        self.status_loss.setText(f"loss {s.loss:.4g}" if s.step else "loss –")
        self.status_val.setText(f"val {s.val_loss:.4g}" if s.val_loss == s.val_loss else "val –")
        rate = s.steps_per_second
        if not self.running:
            self.status_speed.setText("paused")
        else:
            self.status_speed.setText(f"{rate:,.0f} steps/s" if rate >= 10 else
                                      f"{rate:.1f} steps/s")
        self._update_title()

    def _update_title(self):
        name = Path(self.current_path).name if self.current_path else "untitled"
        dirty = self.snapshot is not None and self.snapshot.step > 0 and \
            self.snapshot.step != self.saved_step
        c = self.config
        title = f"{name}{' *' if dirty else ''} — {c.task}, {c.cell.upper()} {c.hidden} — rnnviewer"
        if title != self.windowTitle():
            self.setWindowTitle(title)

    # ------------------------------------------------------------ controls
    @Slot()
    def _on_controls_edited(self):
        if self.worker is None:
            self.config = self.controls.config()
            return
        new = self.controls.config()
        speed = self.controls.speed_value()
        live = {f: getattr(new, f) for f in SessionConfig.LIVE if getattr(new, f) !=
                getattr(self.config, f)}
        shape = [f for f in _FIELD_NAMES if f != "task_options" and
                 getattr(new, f) != getattr(self.config, f)]
        if effective_options(new.task, new.task_options) != \
                effective_options(self.config.task, self.config.task_options):
            shape.append("task_options")
        if shape:
            trained = self.snapshot is not None and self.snapshot.step > 0
            what = " and ".join(_FIELD_NAMES[f] for f in shape)
            if trained and self.interactive and not dialogs.confirm_reset(self, what):
                self.controls.set_config(self.config)
                return
            self._reset(new)
        else:
            self.config = new
            self.worker.set_live(speed=speed, **live)

    def _reset(self, config):
        """Restart with `config`; self.config changes when the worker confirms it."""
        was_running = self.running
        self.current_path = ""
        self.worker.configure(config)
        if was_running:
            self.worker.set_running(True)

    # ------------------------------------------------------------ actions
    @Slot()
    def _on_start_triggered(self):
        if self.worker is not None:
            self.worker.set_running(not self.running)
            # Show the change at once; running_changed confirms it.
            self._on_worker_running_changed(not self.running)

    @Slot()
    def _on_step_triggered(self):
        if self.worker is not None:
            self.worker.step(1)

    @Slot()
    def _on_reset_triggered(self):
        if self.worker is not None:
            self._reset(self.controls.config())

    @Slot()
    def _on_new_triggered(self):
        config = SessionConfig()
        self.controls.set_config(config)
        if self.worker is not None:
            self.worker.set_running(False)
            self._reset(config)
        self.current_path = ""
        self._update_title()

    @Slot()
    def _on_open_triggered(self):
        path, _ = QFileDialog.getOpenFileName(self, "Open session", self._file_dir(),
                                              SESSION_FILTER)
        if path:
            self.open_session(path)

    def open_session(self, path):
        if self.worker is None:
            self.start(path)
        else:
            self.worker.set_running(False)
            self.worker.open_session(path)

    @Slot()
    def _on_recent_menu_about_to_show(self):
        self._fill_recent_menu()

    def _fill_recent_menu(self):
        self.recent_menu.clear()
        files = settings.recent_files()
        for p in files:
            a = self.recent_menu.addAction(Path(p).name)
            a.setData(p)
            a.setToolTip(p)
            a.triggered.connect(self._on_recent_triggered)
        if files:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list").triggered.connect(
                self._on_recent_clear_triggered)
        self.recent_menu.setEnabled(bool(files))

    @Slot()
    def _on_recent_triggered(self):
        path = self.sender().data()
        if path:
            self.open_session(path)

    @Slot()
    def _on_recent_clear_triggered(self):
        settings.clear_recent_files()
        self._fill_recent_menu()

    @Slot()
    def _on_save_triggered(self):
        if self.current_path:
            self.save_session(self.current_path)
        else:
            self._on_save_as_triggered()

    @Slot()
    def _on_save_as_triggered(self):
        default = self.current_path or str(Path(self._file_dir()) /
                                           f"{self.config.task}-{self.config.cell}.npz")
        path, _ = QFileDialog.getSaveFileName(self, "Save session", default, SESSION_FILTER)
        if path:
            if not Path(path).suffix:
                path += ".npz"
            self.save_session(path)

    def save_session(self, path):
        if self.worker is not None:
            self.worker.save_session(path)

    @Slot()
    def _on_import_triggered(self):
        path, _ = QFileDialog.getOpenFileName(
            self, "Import weights", self._file_dir(),
            "Weights (*.pt *.pth *.safetensors *.npz);;All files (*)")
        if path:
            self.import_weights(path)

    def import_weights(self, path):
        """Replace the network by weights from `path`, keeping the task (asks nothing)."""
        if self.worker is not None:
            self.worker.set_running(False)
            self.worker.import_weights(path, self.controls.config())

    def _file_dir(self):
        if self.current_path:
            return str(Path(self.current_path).parent)
        recent = settings.recent_files()
        return str(Path(recent[0]).parent) if recent else str(Path.home())

    @Slot()
    def _on_export_all_triggered(self):
        folder = QFileDialog.getExistingDirectory(self, "Export panels to folder",
                                                  self._file_dir())
        if folder:
            try:
                paths = self.export_panels(folder)
            except Exception as e:
                self._error("Export failed", str(e))
            else:
                self.statusBar().showMessage(f"Saved {len(paths)} images in {folder}", 5000)

    def open_panel_names(self):
        """The panels whose dock is open (View menu), in front or tabbed behind others."""
        return [n for n in self.panels if self.docks[n].toggleViewAction().isChecked()]

    def export_panels(self, folder):
        """Save one PNG per open panel (tabs behind others included), named after the panel;
        returns the paths. Each dock is raised first so that it is laid out at its real size
        (a tab never shown keeps a tiny stale size), then the front tabs are put back."""
        from PySide6.QtWidgets import QApplication
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        front = [d for n, d in self.docks.items() if self.panels[n].is_shown()]
        out = []
        try:
            for name in self.open_panel_names():
                panel, dock = self.panels[name], self.docks[name]
                if not panel.is_shown():
                    dock.raise_()
                    QApplication.processEvents()
                out.append(panel.export_image(folder / f"{name}.png"))
        finally:
            for dock in front:
                dock.raise_()
        return out

    @Slot()
    def _on_export_window_triggered(self):
        path, _ = QFileDialog.getSaveFileName(self, "Save window screenshot", self._file_dir(),
                                              "PNG images (*.png)")
        if path and not self.grab().save(path):
            self._error("Export failed", f"{path}: could not write the image")

    @Slot()
    def _on_export_image_triggered(self):
        panel = self.panels[self.sender().data()]
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {panel.title}", str(Path(self._file_dir()) /
                                               f"{panel.object_name}.png"),
            "PNG images (*.png);;SVG drawings (*.svg)")
        if path:
            try:
                panel.export_image(path)
            except Exception as e:
                self._error("Export failed", f"{path}: {e}")

    @Slot()
    def _on_export_data_triggered(self):
        panel = self.panels[self.sender().data()]
        path, _ = QFileDialog.getSaveFileName(
            self, f"Export {panel.title} data", str(Path(self._file_dir()) /
                                                    f"{panel.object_name}.csv"),
            "CSV tables (*.csv);;NumPy archives (*.npz)")
        if path:
            try:
                panel.export_data(path)
            except Exception as e:
                self._error("Export failed", f"{path}: {e}")

    @Slot()
    def _on_reset_layout_triggered(self):
        if self._default_state is not None:
            self.restoreState(self._default_state)
        self.controls_dock.show()
        for name, dock in self.docks.items():
            dock.setFloating(False)
            dock.setVisible(self.panels[name].default_visible)

    @Slot()
    def _on_shortcuts_triggered(self):
        dialogs.show_shortcuts(self)

    @Slot()
    def _on_about_triggered(self):
        dialogs.show_about(self)

    # ------------------------------------------------------------ settings, close
    def _restore_window(self):
        state = settings.settings().value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)

    def save_settings(self):
        s = settings.settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("session/speed", self.controls.speed_value())
        s.setValue("view/draw_priority", self.draw_priority)
        settings.save_json("session/last_config", self.config.to_dict())
        s.sync()

    def closeEvent(self, event):
        t0 = time.monotonic()
        try:
            self.save_settings()
        except Exception:  # never block quitting on settings
            pass
        self._status_timer.stop()
        # A step ends within milliseconds; a numba compile cannot be interrupted at all.
        budget = 0.05 if self.compiling else 0.6
        if self.autosaver is not None:
            self.autosaver.close()       # the worker autosaves as it stops
        handle = self.worker_thread
        if self.stop(timeout=max(0.05, budget - (time.monotonic() - t0))) or handle is None:
            self.gc_guard.stop()
        else:   # still busy (a compile): collect in the GUI thread only until it ends
            handle.thread.finished.connect(self.gc_guard.on_thread_finished)
        if self.autosaver is not None:
            self.autosaver.release()     # a clean quit: no restore offer next time
        event.accept()

    def dragEnterEvent(self, event):
        if any(u.toLocalFile().endswith(".npz") for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event):
        for u in event.mimeData().urls():
            if u.toLocalFile().endswith(".npz"):
                self.open_session(u.toLocalFile())
                break

