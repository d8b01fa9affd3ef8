"""On Linux, Qt's xcb plugin needs libxcb-cursor0, which Qt's wheels do not carry: without it
the window says what to install, in one line, instead of Qt aborting the process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.ui.main import (
    MISSING_XCB_CURSOR,
    XCB_CURSOR_LIBRARY,
    can_load_library,
    xcb_platform_expected,
)

ROOT = Path(__file__).resolve().parents[2]

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the xcb plugin is Qt's Linux platform")


@linux_only
def test_without_libxcb_cursor_the_window_names_the_package_to_install(tmp_path: Path) -> None:
    # The loader searches LD_LIBRARY_PATH first and stops at a library it cannot load there,
    # so a broken copy hides the system's one, for Qt's plugin as for the check.
    hidden = tmp_path / "lib"
    hidden.mkdir()
    (hidden / XCB_CURSOR_LIBRARY).write_bytes(b"not a shared library")
    env = {name: value for name, value in os.environ.items()
           if name not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE")}
    env.update(DISPLAY=":99", LD_LIBRARY_PATH=str(hidden))
    result = subprocess.run([sys.executable, "-m", "app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr == MISSING_XCB_CURSOR + "\n"
    assert "sudo apt install libxcb-cursor0" in result.stderr
    assert "sudo dnf install xcb-util-cursor" in result.stderr


@linux_only
def test_the_check_loads_libraries_as_the_loader_does() -> None:
    assert can_load_library("libc.so.6")
    assert not can_load_library("libghostpen-no-such-library.so.0")


@linux_only
@pytest.mark.parametrize(("environ", "qt_args", "expected"), [
    ({"DISPLAY": ":0"}, [], True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, [], True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb;wayland"}, [], True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, [], False),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, [], False),
    ({"DISPLAY": ":0"}, ["-platform", "offscreen"], False),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, [], False),
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, [], False),
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, [], True),
    ({}, [], False),  # no display at all: the missing library is not what stops the window
])
def test_the_check_runs_only_when_qt_will_start_its_xcb_plugin(
        environ: dict[str, str], qt_args: list[str], expected: bool) -> None:
    assert xcb_platform_expected(environ, qt_args) is expected
