"""Guided examples (File > Examples, `rnnviewer train --example`, `--screenshot --example`):
each one loads, trains a few steps headless and renders in the window with its panels."""

import dataclasses
import io
import re
from pathlib import Path

import numpy as np
import pytest

from rnnviewer.training import headless
from rnnviewer.training.examples import BY_NAME, EXAMPLES, get_example
from rnnviewer.errors import ConfigError

NAMES = [e.name for e in EXAMPLES]


def small(ex):
    """The example with its settings, shrunk so that a test step costs little."""
    cfg = dict(ex.config, hidden=8, batch=4, seq_len=min(ex.config.get("seq_len", 50), 16))
    return dataclasses.replace(ex, config=cfg)


def test_examples_are_complete_and_valid():
    assert len(EXAMPLES) >= 5 and len(BY_NAME) == len(EXAMPLES)
    required = {("adding", "rnn"), ("adding", "lstm"), ("text", "lstm"), ("parity", "gru")}
    assert required <= {(e.config["task"], e.config["cell"]) for e in EXAMPLES}
    assert "flipflop" in {e.config["task"] for e in EXAMPLES}
    assert {"grad_through_time", "neuron_view", "fixed_points", "spectrum", "maximize"} <= \
        {p for e in EXAMPLES for p in e.panels}
    for e in EXAMPLES:
        cfg = e.session_config()
        assert cfg.task == e.config["task"] and e.steps > 0 and e.text and e.panels
        assert e.reference
    with pytest.raises(ConfigError, match="unknown example 'nope'"):
        get_example("nope")


def test_app_help_lists_every_example():
    from rnnviewer.app import build_parser
    help_text = "".join(build_parser().format_help().split())
    for name in NAMES:
        assert name in help_text


@pytest.mark.parametrize("name", NAMES)
def test_headless_example_trains(name, tmp_path):
    err = io.StringIO()
    out = tmp_path / "run.npz"
    code = headless.main(["--example", name, "--steps", "3", "--hidden", "8", "--batch", "4",
                          "--seq-len", "12", "--val-every", "2", "--save", str(out)],
                         stderr=err)
    assert code == 0, err.getvalue()
    from rnnviewer.training.sessionfile import load_session
    data = load_session(out)
    ex = BY_NAME[name]
    assert data.step == 3
    cfg = data.extra["session_config"]
    assert cfg["cell"] == ex.config["cell"] and cfg["task"] == ex.config["task"]
    assert cfg["hidden"] == 8 and cfg["seq_len"] == 12          # flags override
    assert cfg["optimizer"] == ex.config["optimizer"] and cfg["lr"] == ex.config["lr"]


def test_headless_example_defaults_and_overrides():
    p = headless.build_parser()
    argv = ["--example", "interpretable-units", "--lr", "0.5"]
    args = headless.apply_example(p.parse_args(argv), headless.explicit_dests(argv))
    ex = BY_NAME["interpretable-units"]
    assert args.steps == ex.steps and args.cell == "lstm" and args.hidden == ex.config["hidden"]
    assert args.corpus == "python" and args.lr == 0.5 and args.seq_len == ex.config["seq_len"]
    # another task: the example's task options are not forced onto it
    argv = ["--example", "interpretable-units", "--task", "sine", "--steps", "7"]
    args = headless.apply_example(p.parse_args(argv), headless.explicit_dests(argv))
    assert args.task == "sine" and args.corpus is None and args.steps == 7


def test_headless_unknown_example_is_a_usage_error():
    err = io.StringIO()
    assert headless.main(["--example", "nope"], stderr=err) == headless.EXIT_USAGE
    assert "nope" in err.getvalue()


# ------------------------------------------------------------------ the documentation
ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "user-guide"


def flat(text):
    return " ".join(text.split())


def test_user_guide_gives_every_example_as_in_the_app():
    page = flat((GUIDE / "examples.md").read_text(encoding="utf-8"))
    for e in EXAMPLES:
        assert f"## {e.title}" in page and f"`{e.name}`" in page, e.name
        assert flat(e.text) in page, f"{e.name}: its text in examples.md differs from the app's"
        for p in e.panels:
            assert f"({p}.md)" in page, (e.name, p)


def test_user_guide_has_a_page_for_every_panel():
    from rnnviewer.ui.panels import registered_panels
    index = (GUIDE / "index.md").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    panels = registered_panels()
    assert len(panels) >= 13
    for cls in panels:
        page = GUIDE / f"{cls.object_name}.md"
        assert page.is_file(), f"no user-guide page for the panel {cls.title!r}"
        text = page.read_text(encoding="utf-8")
        assert text.splitlines()[0] == f"# {cls.title}", page.name
        for part in ("**What it shows.**", "**How to read it.**", "**Method.**", "Reference"):
            assert part in text, f"{page.name} has no {part}"
        assert f"| {cls.title} | [{page.name}]({page.name}) |" in index, page.name
        assert f"(docs/user-guide/{page.name})" in readme, page.name


def test_readme_pictures_exist_and_come_from_screenshot_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"!\[[^\]]*\]\((docs/images/[^)]+\.png)\)", readme)
    assert len(shown) >= 3
    for path in shown:
        assert (ROOT / path).is_file(), path
        m = re.search(rf"rnnviewer --screenshot {re.escape(path)} --example (\S+)", readme)
        assert m and m.group(1) in BY_NAME, f"no --screenshot command for {path}"
    docs = readme + "".join(p.read_text(encoding="utf-8") for p in ROOT.glob("docs/**/*.md"))
    unused = [p.name for p in (ROOT / "docs" / "images").glob("*.png") if p.name not in docs]
    assert not unused, f"pictures in docs/images that no page shows: {unused}"


# ------------------------------------------------------------------ the window
@pytest.fixture
def window(qtbot):
    from rnnviewer.ui.main_window import MainWindow
    win = MainWindow(interactive=False, restore_settings=False)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.stop()


def test_examples_menu_lists_every_example(window):
    file_menu = window.menuBar().actions()[0].menu()
    menus = [a.menu() for a in file_menu.actions() if a.menu() is not None]
    ex_menu = next(m for m in menus if m.objectName() == "examples_menu")
    assert [a.data() for a in ex_menu.actions()] == NAMES
    assert [a.text() for a in ex_menu.actions()] == [e.title for e in EXAMPLES]


def test_loading_an_example_asks_before_discarding_a_trained_run(window, qtbot, monkeypatch):
    from rnnviewer.ui import dialogs
    from rnnviewer.ui.runner import train_offscreen
    assert train_offscreen(window, 2, timeout=300) is None
    window.interactive = True
    asked = []
    monkeypatch.setattr(dialogs, "confirm_reset", lambda parent, what: asked.append(what) or False)
    monkeypatch.setattr(window.examples, "show_note", lambda ex: None)
    before = window.config
    assert window.examples.load(small(BY_NAME["flipflop-attractors"])) is False
    assert asked and window.config == before and window.controls.config() == before


@pytest.mark.parametrize("name", NAMES)
def test_example_renders_in_window(window, qtbot, name):
    from rnnviewer.ui.examples_menu import note_html
    from rnnviewer.ui.runner import run_panel_jobs, wait_until
    ex = small(BY_NAME[name])
    assert window.examples.load(ex)
    assert window.controls.config() == ex.session_config()
    window.start()
    assert wait_until(lambda: window.snapshot is not None and window.config == ex.session_config()
                      or window.errors, 300), "no snapshot of the example's session"
    assert not window.errors
    run_id = window.snapshot.run_id
    window.worker.step(3)
    assert wait_until(lambda: window.snapshot.step >= 3 and window.snapshot.run_id == run_id
                      or window.errors, 120)
    assert window.snapshot.model_config["cell"] == ex.config["cell"]
    # the most important panel is on top; every panel of the example is shown
    qtbot.wait(50)
    assert window.panels[ex.panels[0]].is_shown()
    assert run_panel_jobs(window, ex.panels, timeout=120)
    for pname in ex.panels:
        dock, panel = window.docks[pname], window.panels[pname]
        assert not dock.isHidden()
        dock.raise_()
        qtbot.wait(30)
        if getattr(panel, "analyses", ()):    # worker-side analyses: wait for the result
            wait_until(lambda: all(k in (window.snapshot.extra or {})
                                   for k in panel.analyses), 30)
            panel.update_snapshot(window.snapshot)
        panel.drawn = None
        panel.redraw_now()
        assert panel.error is None
        assert not panel.grab().isNull()
        arrays = panel.data_arrays()
        assert arrays and any(np.asarray(a).size for a in arrays.values()), pname
    assert ex.title in note_html(ex) and re.search(r"\d", note_html(ex))
