"""Fault: `kill -9` in the middle of a save, of an autosave and of a generation.

`python -m tests.fault_campaign.kill_save [--quick] [--trials N] [--modes save,autosave,generate]`

Each trial starts the real window (offscreen, a converted tiny GPT-2 installed in its data
folder) in a child process, which opens a document and then, by mode:
- save: changes the first line and saves (DocumentSession.save, as Ctrl+S does), again and
  again, on an 8 MB document, so that each save takes long enough for a kill to land inside;
- autosave: changes the first line and autosaves (DocumentSession.autosave_now, what the
  autosave timer calls), again and again, on the same document;
- generate: presses Ctrl+Enter in a 20 kB chapter and lets the model write, with the window's
  autosave timer at 0.2 s.
The harness SIGKILLs the child at a random moment inside the Nth save or autosave (N random,
the moment uniform over the length of the earlier ones) or 0.3-2.5 s into the generation, and
checks what is on disk: the document is byte for byte the old version or the new one, never
anything else; the autosave file is whole (valid JSON holding the text of the last finished or
the interrupted autosave). The next start of the window must offer that autosave back, and
restoring it must give exactly its text; that start is the next trial's (a last one only
reports). 50 trials per mode, 3 with --quick.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tests.fault_campaign.common import (
    Child,
    DialogAnswerer,
    Verdict,
    app_env,
    build_model,
    child_argv,
    emit,
    log_errors,
    prose,
    sha256,
    wait_for,
    work_dir,
)

if TYPE_CHECKING:
    from app.ui.main_window import MainWindow

MODES = ("save", "autosave", "generate")
DOCUMENT_BYTES = 8_000_000  # save and autosave modes
CHAPTER_WORDS = 3_500  # about 20 kB: the generate mode's document
START_TIMEOUT_S = 90.0
# Text written this long before a kill must be in an autosave (the generate mode's interval is
# 0.2 s; the rest is slack for a busy machine).
UNSAVED_LIMIT_S = 1.0


# --- the documents -------------------------------------------------------------------------------


def document_body(seed: int, size: int) -> str:
    rng = random.Random(seed)
    paragraphs = [prose(rng, rng.randint(40, 200)) for _ in range(60)]
    parts, length, i = [], 0, 0
    while length < size:
        parts.append(paragraphs[i % len(paragraphs)])
        length += len(parts[-1].encode("utf-8")) + 2
        i += 1
    return "\n\n".join(parts) + "\n"


def versioned(version: int, body: str) -> str:
    """The document's text at `version`: its first line says which it is."""
    return f"version {version:08d}\n{body}"


def version_of(text: str) -> int:
    first = text.split("\n", 1)[0]
    return int(first.removeprefix("version ")) if first.startswith("version ") else 0


# --- the child: the real window ------------------------------------------------------------------


def child(mode: str, doc: Path) -> int:
    from PySide6.QtCore import Qt, QTimer
    from PySide6.QtGui import QTextCursor
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from app.ui import document_session, documents
    from app.ui.documents import Autosave
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    app = QApplication([sys.argv[0]])
    # Kept for the life of the window: it answers, and reports, any dialog the window opens.
    _answerer = DialogAnswerer(on_dialog=lambda text: emit("dialog", json.dumps(text)))
    real_save = Autosave.save

    def traced_save(self: Autosave, text: str, *args: object, **kwargs: object) -> None:
        digest = sha256(text)
        emit("autosave-begin", digest)
        real_save(self, text, *args, **kwargs)  # type: ignore[arg-type]
        emit("autosave-end", digest)

    Autosave.save = traced_save  # type: ignore[method-assign]
    # The file writes inside a save (document_session's name) and an autosave (documents'):
    # the harness aims half its kills at these.
    for module in (document_session, documents):
        module.write_text_atomic = traced_write(module.write_text_atomic)  # type: ignore
    window = MainWindow(Settings())
    window.show()
    window.activateWindow()
    wait_for(lambda: window.engine_info is not None or window.model_label.text() == "No model",
             START_TIMEOUT_S)
    offered = restore_offered(window)
    restored = sha256(window.editor.toPlainText()) if offered is not None else "none"
    emit("started", sha256(offered) if offered is not None else "none", restored,
         "loaded" if window.engine_info else "no-model")

    # From here on the document on disk, as a writer who dealt with the offer would have it.
    window.editor.document().setModified(False)
    if mode == "report":
        window.shutdown()
        return 0
    if not window.document.open(doc):
        emit("open-failed")
        return 1
    editor = window.editor
    version = version_of(editor.toPlainText())
    emit("opened", version)

    def set_first_line(line: str) -> None:
        cursor = QTextCursor(editor.document())
        cursor.movePosition(QTextCursor.MoveOperation.Start)
        cursor.movePosition(QTextCursor.MoveOperation.EndOfBlock, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(line)

    if mode in ("save", "autosave"):
        while True:  # until killed
            version += 1
            set_first_line(f"version {version:08d}")
            if mode == "save":
                emit("save-begin", version)
                saved = window.document.save()
                emit("save-end", version, saved)
            else:
                window.document.autosave_now()
            app.processEvents()

    def generate() -> None:
        editor.moveCursor(QTextCursor.MoveOperation.End)
        editor.setFocus()
        QTest.keyClick(editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
        emit("generating" if window.generation.running else "not-generating")

    window.generation.finished.connect(
        lambda stats: (emit("finished", stats.stop_reason), QTimer.singleShot(50, generate)))
    first_token = [True]

    def on_token(*_: object) -> None:
        if first_token[0]:
            first_token[0] = False
            emit("first-token")

    window.worker.token_generated.connect(on_token)
    QTimer.singleShot(0, generate)
    app.exec()
    return 0


def traced_write(write: Callable[..., None]) -> Callable[..., None]:
    def traced(*args: object, **kwargs: object) -> None:
        emit("write-begin")
        write(*args, **kwargs)
        emit("write-end")

    return traced


def restore_offered(window: MainWindow) -> str | None:
    """The text the window offers back at start in the bar above the editor, restored as the
    writer would (its Restore button); None when nothing is offered."""
    recovery = window.recovery_offer.current()
    if recovery is None:
        return None
    window.recovery_offer.restore_button.click()
    return recovery.text


# --- the harness ---------------------------------------------------------------------------------


@dataclass
class ModeFigures:
    trials: int = 0
    inside: int = 0  # kills that landed inside a save / an autosave / a generation
    disk_ok: int = 0
    autosave_ok: int = 0  # autosave file whole after the kill (autosave, generate)
    offered_ok: int = 0  # the next start offered exactly that autosave, and restored it
    recovered_chars: list[int] = field(default_factory=list)  # generate: text written, kept
    start_s: list[float] = field(default_factory=list)
    aimed_at_write: int = 0  # kills aimed inside the file write rather than the whole save
    mid_write: int = 0  # kills that left a temporary file: they hit the write itself
    before_first: int = 0  # killed before its first autosave finished: nothing to offer
    unsaved_s: list[float] = field(default_factory=list)  # and how long text had been written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign.kill_save",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 kills per mode instead of 50")
    parser.add_argument("--trials", type=int, help="kills per mode")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--child", choices=(*MODES, "report"), help=argparse.SUPPRESS)
    parser.add_argument("--doc", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.doc)

    trials = args.trials or (3 if args.quick else 50)
    verdict = Verdict("kill_save")
    folder = work_dir("kill-save", args.keep)
    model = build_model(folder, "tiny", "int8")
    verdict.figure("model", "tiny int8 (random, seed 0), CPU; window offscreen")
    rng = random.Random(args.seed)
    body = document_body(args.seed, DOCUMENT_BYTES)
    for mode in args.modes.split(","):
        run_mode(mode, trials, rng, folder, model, body, verdict)
    return verdict.finish()


def run_mode(mode: str, trials: int, rng: random.Random, folder: Path, model: Path, body: str,
             verdict: Verdict) -> None:
    from app.engine.sampling_params import SamplingParams

    root = folder / mode
    shutil.copytree(model, root / "data" / "models" / model.name)
    (root / "config").mkdir(parents=True)
    settings = {"autosave_interval_s": 0.2 if mode == "generate" else 3600.0,
                "suggestions": False,
                "sampling": SamplingParams(max_new_tokens=100_000).to_json()}
    (root / "config" / "settings.json").write_text(json.dumps(settings), "utf-8")
    doc = root / "docs" / "novel.txt"
    doc.parent.mkdir()
    original = versioned(0, body) if mode != "generate" else \
        prose(random.Random(5), CHAPTER_WORDS) + "\n\nThe next morning"
    doc.write_text(original, "utf-8", newline="")
    env = app_env(root)
    stderr = root / "children.stderr"
    figures = ModeFigures()
    expected: set[str] | None = None  # what the next start may offer back (sha or "none")
    print(f"{mode}: {trials} kills", flush=True)
    for trial in range(trials + 1):
        last = trial == trials
        run = Child(child_argv("kill_save", "--child", "report" if last else mode,
                               "--doc", str(doc)), env, stderr)
        started = run.expect(lambda line: line.startswith("started "), START_TIMEOUT_S)
        if not verdict.check(started is not None, f"{mode} trial {trial}: the window did not "
                             f"start (see {stderr})"):
            run.stop()
            return
        figures.start_s.append(started[0] - run.started)
        _, offered, restored, engine = started[1].split()
        if expected is not None:
            ok = verdict.check(offered in expected, f"{mode} trial {trial}: the start offered "
                               f"{offered[:12]} back, expected one of "
                               f"{sorted(e[:12] for e in expected)}")
            ok = verdict.check(restored == offered, f"{mode} trial {trial}: restoring gave "
                               "other text than the autosave held") and ok
            figures.offered_ok += ok and offered != "none"
        verdict.check(engine == "loaded" or mode != "generate",
                      f"{mode} trial {trial}: the model did not load")
        if last:
            verdict.check(run.finish(60) == 0, f"{mode}: the last start did not exit cleanly")
            break
        expected = kill_trial(mode, trial, run, rng, doc, original, body, root, figures,
                              verdict)
        figures.trials += 1
        if verdict.failures and len(verdict.failures) > 20:
            break
    report_mode(mode, root, doc, figures, verdict)


def kill_trial(mode: str, trial: int, run: Child, rng: random.Random, doc: Path, original: str,
               body: str, root: Path, figures: ModeFigures, verdict: Verdict) -> set[str]:
    """Kill `run` at a random moment inside its work; check the disk; return what the next
    start may offer back."""
    where = f"{mode} trial {trial}"
    temporary_before = len(temporary_files(root, doc))
    opened = run.expect(lambda line: line.startswith(("opened", "open-failed")), 60)
    if not verdict.check(opened is not None and opened[1].startswith("opened"),
                         f"{where}: the document did not open"):
        run.stop()
        return {"none"}
    assert opened is not None
    at_open = int(opened[1].split()[1])
    if mode == "generate":
        going = run.expect(lambda line: line.startswith(("generating", "not-generating")), 60)
        verdict.check(going is not None and going[1] == "generating",
                      f"{where}: Ctrl+Enter did not start a generation")
        time.sleep(rng.uniform(0.3, 2.5))
        killed_at = run.kill()
    else:
        aim = rng.choice(("whole", "write"))  # the whole save, or only its file write
        begin, end = ("write-begin", "write-end") if aim == "write" else \
            ("save-begin", "save-end") if mode == "save" else ("autosave-begin", "autosave-end")
        target = rng.randint(2, 4)
        begins: list[float] = []
        durations: list[float] = []
        while len(begins) < target:
            item = run.expect(lambda line: line.startswith((begin, end, "dialog")), 60)
            if item is None or item[1].startswith("dialog"):
                verdict.check(False, f"{where}: {item[1] if item else 'no progress'}")
                run.stop()
                return {"none"}
            if item[1].startswith(begin):
                begins.append(item[0])
            else:
                durations.append(item[0] - begins[-1])
        time.sleep(rng.uniform(0, statistics.mean(durations)))
        killed_at = run.kill()
        figures.aimed_at_write += aim == "write"
        figures.mid_write += len(temporary_files(root, doc)) > temporary_before
    lines = [line for _, line in run.lines]
    dialogs = [line for line in lines if line.startswith("dialog")]
    verdict.check(not dialogs, f"{where}: the window showed {dialogs[:1]}")

    on_disk = doc.read_bytes()
    if mode == "save":
        done = [int(line.split()[1]) for line in lines
                if line.startswith("save-end") and line.endswith("True")]
        started = [int(line.split()[1]) for line in lines if line.startswith("save-begin")]
        old = max(done, default=at_open)
        new = started[-1] if started and started[-1] not in done else None
        figures.inside += new is not None
        allowed = {sha256(versioned(v, body)): v for v in (old, new) if v is not None}
        ok = verdict.check(sha256(on_disk) in allowed, f"{where}: the document on disk is "
                           f"neither version {old} nor {new}: {len(on_disk):,} bytes, first "
                           f"line {on_disk[:20]!r}")
        figures.disk_ok += ok
        return {"none"}  # autosaves are off in this mode: nothing to offer

    figures.disk_ok += verdict.check(on_disk == original.encode("utf-8"),
                                     f"{where}: the document on disk changed, though it was "
                                     "never saved")
    after_open = lines[next(i for i, line in enumerate(lines) if line.startswith("opened")):]
    ends = [line.split()[1] for line in after_open if line.startswith("autosave-end")]
    begins = [line.split()[1] for line in after_open if line.startswith("autosave-begin")]
    in_flight = begins[-1] if len(begins) > len(ends) else None
    if mode == "autosave":
        figures.inside += in_flight is not None
    else:
        finished = [i for i, line in enumerate(after_open) if line.startswith("finished")]
        generating = [i for i, line in enumerate(after_open) if line.startswith("generating")]
        figures.inside += bool(generating) and (not finished or generating[-1] > finished[-1])
    allowed = {s for s in (ends[-1] if ends else None, in_flight) if s is not None}
    files = sorted((root / "data" / "recovery").glob("*.json"))
    if not files:
        verdict.check(not ends, f"{where}: {len(ends)} autosaves finished, but no autosave "
                      "file is left")
        figures.before_first += not ends
        first_token = next((t for t, line in run.lines if line == "first-token"), None)
        if mode == "generate" and first_token is not None:  # text was lost: how much?
            figures.unsaved_s.append(killed_at - first_token)
            verdict.check(killed_at - first_token < UNSAVED_LIMIT_S, f"{where}: the model had "
                          f"written for {killed_at - first_token:.2f} s when killed, and no "
                          "autosave had finished (the interval is 0.2 s)")
        return {"none"}
    if not verdict.check(len(files) == 1, f"{where}: {len(files)} autosave files, expected 1"):
        return {"none"}
    try:
        text = str(json.loads(files[0].read_text("utf-8"))["text"])
    except (ValueError, KeyError, TypeError) as error:
        verdict.check(False, f"{where}: the autosave file is damaged ({error})")
        return {"none"}
    ok = verdict.check(sha256(text) in allowed, f"{where}: the autosave file holds neither the "
                       "last finished autosave nor the interrupted one")
    if mode == "generate":
        ok = verdict.check(text.startswith(original), f"{where}: the autosave lost the "
                           "document's own text") and ok
        figures.recovered_chars.append(len(text) - len(original))
    figures.autosave_ok += ok
    return {sha256(text)}


def temporary_files(root: Path, doc: Path) -> list[Path]:
    """What a write left beside the document and in the recovery folder, unrenamed."""
    folders = [doc.parent, root / "data" / "recovery"]
    return [p for folder in folders if folder.is_dir() for p in folder.iterdir()
            if p.name.endswith(".tmp")]


def report_mode(mode: str, root: Path, doc: Path, figures: ModeFigures,
                verdict: Verdict) -> None:
    what = {"save": "inside a save", "autosave": "inside an autosave",
            "generate": "while generating"}[mode]
    verdict.figure(f"{mode}: kills", f"{figures.trials}, {figures.inside} landed {what}")
    if mode != "generate":
        verdict.figure(f"{mode}: kills aimed at the file write / that left its temporary file",
                       f"{figures.aimed_at_write} / {figures.mid_write}")
    verdict.figure(f"{mode}: document on disk old or new, whole",
                   f"{figures.disk_ok}/{figures.trials}", summary=True)
    if mode != "save":
        verdict.figure(f"{mode}: autosave file whole after the kill",
                       f"{figures.autosave_ok}/{figures.trials}")
        verdict.figure(f"{mode}: offered back at the next start and restored exactly",
                       f"{figures.offered_ok}/{figures.trials - figures.before_first}",
                       summary=True)
        lost = f"; the model had written for {max(figures.unsaved_s):.2f} s at most" \
            if figures.unsaved_s else ""
        verdict.figure(f"{mode}: killed before its first autosave had finished (nothing to "
                       "offer)", f"{figures.before_first}{lost}")
    if figures.recovered_chars:
        verdict.figure(f"{mode}: generated text kept by the autosave",
                       f"median {statistics.median(figures.recovered_chars):.0f} characters")
    verdict.figure(f"{mode}: window start to offer", f"median "
                   f"{statistics.median(figures.start_s):.2f} s")
    leftovers = temporary_files(root, doc)
    verdict.figure(f"{mode}: temporary files left by killed writes",
                   f"{len(leftovers)} ({sum(p.stat().st_size for p in leftovers) / 1e6:.1f} MB)")
    recovery = [p.name for p in (root / "data" / "recovery").glob("*.json")]
    verdict.check(not recovery, f"{mode}: autosaves left after the last clean exit: {recovery}")
    errors = log_errors(root / "data")
    verdict.check(not errors, f"{mode}: the log has {len(errors)} errors, first: "
                  f"{errors[:1]}")


if __name__ == "__main__":
    sys.exit(main())
