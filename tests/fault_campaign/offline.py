"""Fault: ten minutes of writing, watched for any attempt to reach the network.

`python -m tests.fault_campaign.offline [--quick] [--minutes M]`

The real window, started as `python -m app` starts it (run_gui: logging, the error hook, the
window, the model loaded on the worker thread), offscreen, with two converted tiny GPT-2s
installed, runs under `strace -f` (every thread and child) for 10 minutes (1 with --quick)
while a driver in the same process writes with it: it types sentences into the editor key by
key with QTest at 5-20 keys a second, stops to think now and then, pauses after each sentence
so that ghost text appears, accepts it (Tab) or dismisses it (Esc), presses Ctrl+Enter after
every third sentence and waits for the model to finish, and every 30 s switches to the other
model (MainWindow.use_model, what the Models dialog calls). The environment does not switch
telemetry off (HF_HUB_OFFLINE and ORT_DISABLE_TELEMETRY are removed): the app must do it
itself.

Every connect, sendto, sendmsg and sendmmsg is logged; one whose address is AF_INET or AF_INET6
(DNS included: a lookup is a datagram to port 53) counts as a network call. Passes with zero,
no dialog, no error in the log, and keystrokes, suggestions, generations and switches done.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from tests.fault_campaign.common import (
    DialogAnswerer,
    Verdict,
    app_env,
    build_model,
    child_argv,
    log_errors,
    pause,
    prose,
    wait_for,
    work_dir,
)

SWITCH_EVERY_S = 30.0
MODELS = ("tiny-int8", "tiny-fp32")
CANARY = b"ghostpen-fault-campaign-canary"  # sent on a local socket pair: strace is watching


def driver(minutes: float, report: Path, seed: int) -> int:
    """Run the window as `python -m app` does, and write with it for `minutes`."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication([sys.argv[0]])
    answerer = DialogAnswerer()
    counts = {"keystrokes": 0, "suggestions computed": 0, "ghost texts shown": 0,
              "ghost texts accepted": 0, "generations": 0, "tokens generated": 0,
              "model switches": 0}
    failures: list[str] = []

    def scenario() -> None:
        from app.ui.main_window import MainWindow

        window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
        try:
            write_with(window, minutes, random.Random(seed), counts)
        except Exception:
            failures.append(traceback.format_exc())
        finally:
            left, right = socket.socketpair()
            left.sendmsg([CANARY])
            left.close()
            right.close()
            report.write_text(json.dumps({"counts": counts, "failures": failures,
                                          "dialogs": answerer.seen}), "utf-8")
            window.editor.document().setModified(False)
            app.quit()

    QTimer.singleShot(0, scenario)
    from app.ui.main import run_gui

    return run_gui([])


def write_with(window: object, minutes: float, rng: random.Random,
               counts: dict[str, int]) -> None:
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.ui.main_window import MainWindow

    assert isinstance(window, MainWindow)
    editor = window.editor
    if not wait_for(lambda: window.engine_info is not None, 60):
        raise RuntimeError("the model did not load")
    shown = [False]

    def on_ghost() -> None:
        if editor.ghost is not None and not shown[0]:
            counts["ghost texts shown"] += 1
        shown[0] = editor.ghost is not None

    def on_suggestions(*_: object) -> None:
        counts["suggestions computed"] += 1

    def on_token(*_: object) -> None:
        counts["tokens generated"] += 1

    editor.ghost_changed.connect(on_ghost)
    window.worker.suggestions_ready.connect(on_suggestions)
    window.worker.token_generated.connect(on_token)
    window.activateWindow()
    editor.setFocus()
    end = time.monotonic() + minutes * 60
    next_switch = time.monotonic() + SWITCH_EVERY_S
    sentences = 0
    while time.monotonic() < end:
        for key in " " + prose(rng, rng.randint(5, 14)):
            type_key(editor, key)
            counts["keystrokes"] += 1
            # Now and then a writer stops to think mid-sentence: ghost text comes, and the
            # next keys type over it.
            pause(rng.uniform(0.4, 0.9) if key == " " and rng.random() < 0.1
                  else rng.uniform(0.05, 0.2))
        if wait_for(lambda: editor.ghost is not None, 3.0):
            accept = rng.random() < 0.5
            QTest.keyClick(editor, Qt.Key.Key_Tab if accept else Qt.Key.Key_Escape)
            counts["ghost texts accepted"] += accept
            counts["keystrokes"] += 1
        sentences += 1
        if sentences % 3 == 0:
            QTest.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
            if not wait_for(lambda: window.generation.running, 5):
                raise RuntimeError("Ctrl+Enter did not start a generation")
            if not wait_for(lambda: not window.generation.running, 120):
                raise RuntimeError("a generation did not end within 120 s")
            counts["generations"] += 1
            QTest.keyClick(editor, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
        if len(editor.toPlainText()) > 4000:  # a fresh page: select all, delete
            QTest.keyClick(editor, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
            QTest.keyClick(editor, Qt.Key.Key_Backspace)
            counts["keystrokes"] += 2
        if time.monotonic() >= next_switch:
            assert window.engine_info is not None
            other = next(m for m in MODELS if m != window.engine_info.model_name)
            window.use_model(other)
            if not wait_for(lambda o=other: window.engine_info is not None
                            and window.engine_info.model_name == o, 60):
                raise RuntimeError(f"switching to {other} did not finish within 60 s")
            counts["model switches"] += 1
            next_switch = time.monotonic() + SWITCH_EVERY_S


def type_key(widget: object, character: str) -> None:
    """One key press that types `character`. QTest's own mapping knows ASCII only (it asserts
    on é); a Latin-1 letter's key code is its capital's code point, as on a keyboard."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QWidget

    assert isinstance(widget, QWidget)
    if character.isascii():
        QTest.keyClicks(widget, character)
    else:
        QTest.sendKeyEvent(QTest.KeyAction.Click, widget, Qt.Key(ord(character.upper())),
                           character, Qt.KeyboardModifier.NoModifier)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign.offline",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 minute instead of 10")
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--driver", type=Path, help=argparse.SUPPRESS)  # its report file
    args = parser.parse_args(argv)
    minutes = args.minutes or (1.0 if args.quick else 10.0)
    if args.driver:
        return driver(minutes, args.driver, args.seed)

    from tests.test_no_network import NETWORK_CALL

    verdict = Verdict("offline")
    strace = shutil.which("strace")
    if not verdict.check(strace is not None, "strace is not installed (apt install strace)"):
        return verdict.finish()
    assert strace is not None
    folder = work_dir("offline", args.keep)
    models = folder / "data" / "models"
    for name, seed in zip(MODELS, (0, 1), strict=True):
        build_model(folder, "tiny", name.removeprefix("tiny-"), seed=seed, name=name)
        models.mkdir(parents=True, exist_ok=True)
        (folder / name).rename(models / name)
    from app.engine.sampling_params import SamplingParams

    (folder / "config").mkdir()
    (folder / "config" / "settings.json").write_text(json.dumps({
        "last_model": MODELS[0], "sampling": SamplingParams(max_new_tokens=40).to_json()}))
    env = app_env(folder)
    for name in ("HF_HUB_OFFLINE", "ORT_DISABLE_TELEMETRY"):
        env.pop(name, None)
    log, report = folder / "network.strace", folder / "driver.json"
    verdict.figure("models", f"{', '.join(MODELS)} (random tiny GPT-2s, seeds 0 and 1), CPU")
    verdict.figure("watched", f"{minutes:g} minutes under strace -f -e "
                   "trace=connect,sendto,sendmsg,sendmmsg")
    command = [strace, "-f", "-qq", "--seccomp-bpf", "-e",
               "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(log),
               *child_argv("offline", "--driver", str(report), "--minutes", str(minutes),
                           "--seed", str(args.seed))]
    try:
        run = subprocess.run(command, env=env, timeout=minutes * 60 + 300,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        status, stderr = run.returncode, run.stderr
    except subprocess.TimeoutExpired:
        status, stderr = None, "timed out"
    verdict.check(status == 0, f"the window exited with {status}: {stderr.strip()[-500:]}")
    if not verdict.check(report.exists(), "the driver wrote no report"):
        return verdict.finish()
    result = json.loads(report.read_text("utf-8"))
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    network = [line for line in lines if NETWORK_CALL.search(line)]
    verdict.check(any(CANARY.decode() in line for line in lines),
                  "strace did not see the driver's own canary send: it was not watching")
    verdict.figure("connect/send calls to AF_INET or AF_INET6", len(network), summary=True)
    verdict.figure("other traced calls (local sockets, the canary)", len(lines) - len(network))
    for line in network[:5]:
        print(f"    {line}", flush=True)
    verdict.check(not network, f"{len(network)} network calls, first: {network[:1]}")
    for name, value in result["counts"].items():
        verdict.figure(name, value, summary=name in ("keystrokes", "generations",
                                                     "ghost texts shown", "model switches"))
    verdict.check(not result["failures"], f"the driver failed: {result['failures'][:1]}")
    verdict.check(not result["dialogs"], f"the window showed {result['dialogs'][:1]}")
    counts = result["counts"]
    verdict.check(all(counts[k] > 0 for k in ("keystrokes", "ghost texts shown", "generations")),
                  f"the run did not exercise everything: {counts}")
    verdict.check(minutes < 1 or counts["model switches"] > 0, "no model switch happened")
    errors = log_errors(folder / "data")
    verdict.check(not errors, f"the log has {len(errors)} errors, first: {errors[:1]}")
    return verdict.finish()


if __name__ == "__main__":
    sys.exit(main())
