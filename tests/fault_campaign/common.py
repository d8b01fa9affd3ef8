"""What the fault modules share: a real converted model, folders of their own, child processes
whose output lines arrive timestamped, the figures each prints and the verdict it exits with.

Nothing here imports Qt at module level: the download fault runs without it. The Qt helpers
(`wait_for`, `DialogAnswerer`) import it when called.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from PySide6.QtWidgets import QWidget

REPO = Path(__file__).resolve().parents[2]
# Plain words for prose the tokenizer reads as English (the models are random: sense is not
# the point, realistic token counts and a mix of short and long words are).
_WORD_LIST = (
    "the lighthouse keeper climbed stairs each evening and counted steps before he lit lamp "
    "that warned ships away from rocks below storm broke glass wrote in his log no ship lost "
    "tonight morning came grey over harbour where fishermen mended nets while gulls argued "
    "about bread her letter arrived late folded twice smelling of salt café naïve über"
)
WORDS = tuple(_WORD_LIST.split())


def prose(rng: random.Random, n_words: int) -> str:
    """`n_words` of sentences made of WORDS, with capitals, commas and full stops."""
    sentences, words = [], 0
    while words < n_words:
        length = min(rng.randint(6, 18), n_words - words)
        chosen = [rng.choice(WORDS) for _ in range(length)]
        if length > 8 and rng.random() < 0.5:
            chosen[length // 2] += ","
        sentences.append(" ".join(chosen).capitalize() + ".")
        words += length
    return " ".join(sentences)


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, interpolated; nan when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def work_dir(name: str, keep: bool) -> Path:
    """A fresh folder for one fault's files, removed at exit unless `keep`."""
    folder = Path(tempfile.mkdtemp(prefix=f"ghostpen-fault-{name}-"))
    if not keep:
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def build_model(folder: Path, preset: str = "tiny", precision: str = "int8", seed: int = 0,
                name: str | None = None) -> Path:
    """A seeded random GPT-2 checkpoint converted by our own exporter, as `python -m
    models.random` and `python -m models.export` make them: folder/<name>."""
    from models.export import export_model
    from models.random import write_random_checkpoint

    checkpoint = folder / f"{preset}-seed{seed}-checkpoint"
    if not (checkpoint / "model.safetensors").exists():
        write_random_checkpoint(preset, checkpoint, seed=seed)
    out = folder / (name or f"{preset}-{precision}")
    export_model(checkpoint, out, precision, progress=lambda _line: None)
    return out


def app_env(root: Path, **extra: str) -> dict[str, str]:
    """The environment of a Ghostpen process whose settings, data and Hugging Face cache live
    under `root` (config/, data/, hf/), offscreen, offline, with the real engine."""
    env = {**os.environ, "GHOSTPEN_CONFIG_DIR": str(root / "config"),
           "GHOSTPEN_DATA_DIR": str(root / "data"), "HF_HOME": str(root / "hf"),
           "QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    for name in ("GHOSTPEN_FAKE_ENGINE", "HF_HUB_CACHE"):
        env.pop(name, None)
    env.update(extra)
    return env


def use_env(env: dict[str, str]) -> None:
    """Make `env` this process's environment (for the faults that drive Ghostpen in-process)."""
    os.environ.clear()
    os.environ.update(env)


def emit(*parts: object) -> None:
    """One protocol line from a child process to the harness that started it."""
    print(" ".join(str(p) for p in parts), flush=True)


class Child:
    """A child process whose stdout lines arrive, each with the time.monotonic() it was read,
    on a queue; stderr goes to a file for the post-mortem."""

    def __init__(self, argv: list[str], env: dict[str, str], stderr: Path) -> None:
        self.lines: list[tuple[float, str]] = []
        self._queue: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self._stderr = stderr.open("ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=self._stderr, text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put((time.monotonic(), line.rstrip("\n")))
        self._queue.put(None)

    def next_line(self, timeout_s: float) -> tuple[float, str] | None:
        """The next line, or None when none came in time or the child's output ended."""
        try:
            item = self._queue.get(timeout=max(0.0, timeout_s))
        except queue.Empty:
            return None
        if item is not None:
            self.lines.append(item)
        return item

    def expect(self, matches: Callable[[str], bool], timeout_s: float) -> tuple[float, str] | None:
        """Read lines until one `matches`; None when none did within `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while (item := self.next_line(deadline - time.monotonic())) is not None:
            if matches(item[1]):
                return item
        return None

    def kill(self) -> float:
        """SIGKILL now; the lines it wrote before dying are read. Returns the kill's time."""
        at = time.monotonic()
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.finish(30)
        return at

    def finish(self, timeout_s: float) -> int | None:
        """Wait for the exit and read every line left; the exit status, None if still running."""
        try:
            status = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        while self.next_line(5) is not None:
            pass
        self._stderr.close()
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.kill()


class Verdict:
    """The figures a fault prints as it goes, the failures it finds, its exit status."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures: list[str] = []
        self.summary: list[str] = []
        self.started = time.monotonic()

    def figure(self, label: str, value: object, summary: bool = False) -> None:
        print(f"  {label}: {value}", flush=True)
        if summary:
            self.summary.append(f"{label} {value}")

    def check(self, ok: bool, failure: str) -> bool:
        if not ok:
            self.failures.append(failure)
            print(f"  FAIL: {failure}", flush=True)
        return ok

    def finish(self) -> int:
        """Print the one-line summary (the last line, which the campaign runner shows)."""
        took = time.monotonic() - self.started
        figures = "; ".join(self.summary)
        if self.failures:
            print(f"{self.name}: FAIL, {len(self.failures)} failure(s), first: "
                  f"{self.failures[0]} ({took:.0f} s)", flush=True)
            return 1
        print(f"{self.name}: PASS, {figures} ({took:.0f} s)", flush=True)
        return 0


def log_errors(data_dir: Path) -> list[str]:
    """ERROR lines in Ghostpen's log under `data_dir` (a traceback the window kept to itself)."""
    log = data_dir / "logs" / "ghostpen.log"
    if not log.exists():
        return []
    return [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]


# --- Qt ------------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], bool], timeout_s: float, poll_ms: int = 2) -> bool:
    """Run the Qt event loop until `condition()` holds; False if `timeout_s` passed first.
    The loop sleeps between events (a busy loop would take a core from the model)."""
    from PySide6.QtCore import QEventLoop, QTimer

    if condition():
        return True
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    poll = QTimer()
    poll.setInterval(poll_ms)
    poll.timeout.connect(lambda: loop.quit() if condition() or time.monotonic() > deadline
                         else None)
    poll.start()
    loop.exec()
    poll.stop()
    return condition()


def pause(seconds: float) -> None:
    """Let the window run for `seconds`, as a person's pause does."""
    until = time.monotonic() + seconds
    wait_for(lambda: time.monotonic() >= until, seconds + 1, poll_ms=max(1, int(seconds * 100)))


class DialogAnswerer:
    """Nobody can click an offscreen dialog: this one does, and keeps what it said. A message
    box gets its `choose` button (default: its default button, else the first that accepts);
    any other modal dialog is rejected."""

    def __init__(self, on_dialog: Callable[[str], None] | None = None,
                 choose: Callable[[Any], Any] | None = None) -> None:
        from PySide6.QtCore import QTimer

        self.seen: list[str] = []
        self._on_dialog = on_dialog or (lambda _text: None)
        self._choose = choose
        self._timer = QTimer()
        self._timer.setInterval(20)
        self._timer.timeout.connect(self._answer)
        self._timer.start()

    def _answer(self) -> None:
        from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

        widget: QWidget | None = QApplication.activeModalWidget()
        if widget is None:
            return
        if isinstance(widget, QMessageBox):
            text = " ".join(f"{widget.windowTitle()}: {widget.text()}".split())
            button = self._choose(widget) if self._choose else None
            if button is None:
                button = widget.defaultButton() or next(
                    (b for b in widget.buttons() if widget.buttonRole(b) in (
                        QMessageBox.ButtonRole.AcceptRole, QMessageBox.ButtonRole.YesRole)),
                    None)
            self._record(text)
            if button is not None:
                button.click()
            else:
                widget.reject()
        elif isinstance(widget, QDialog):
            self._record(f"dialog {widget.windowTitle()}")
            widget.reject()

    def _record(self, text: str) -> None:
        self.seen.append(text)
        self._on_dialog(text)


def child_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"tests.fault_campaign.{module}", *args]
