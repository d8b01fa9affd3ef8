"""Fault: the disk fills up while the window saves.

`python -m tests.fault_campaign.disk_full [--quick]`

A 1 MiB tmpfs is mounted (`mount -t tmpfs -o size=1m`, which needs root; without it the
harness says so and reruns itself in a child whose RLIMIT_FSIZE is 1 MiB, so that the write
fails with EFBIG instead of ENOSPC). A 300 kB document on it is opened in the real window
(offscreen, a converted tiny GPT-2 loaded), changed, and saved with Ctrl+S's code
(DocumentSession.save):
1. a text bigger than the space left (1.5 MB);
2. a text that would fit alone but not beside the old file, which an atomic save keeps until
   the new one is whole (800 kB);
3. one character more, with the disk already full to the last block.
(Under the file size limit only the first applies.)
Each must fail with the old file byte-identical, no temporary file left, the space given back,
exactly one message box whose one line names the file, the cause and what to do (the same text
as the save path's exception and the status bar), and the new text still in the editor,
unsaved. Then space is freed and the same save must succeed. The tmpfs is unmounted after.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import signal
import subprocess
import sys
from pathlib import Path

from tests.fault_campaign.common import (
    DialogAnswerer,
    Verdict,
    app_env,
    build_model,
    child_argv,
    prose,
    use_env,
    wait_for,
    work_dir,
)

SPACE = 1024 * 1024  # the tmpfs, or the per-file limit without mount
ORIGINAL_BYTES = 300_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign.disk_full",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the same: it takes seconds")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--file-size-limit", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    verdict = Verdict("disk_full")
    if args.file_size_limit:  # the fallback child
        run(args.dir, args.dir / "docs", None, verdict)
        return verdict.finish()

    folder = work_dir("disk-full", args.keep)
    model = build_model(folder, "tiny", "int8")  # in the window's data folder, before any limit
    (folder / "data" / "models").mkdir(parents=True)
    model.rename(folder / "data" / "models" / model.name)
    mount_point = folder / "small-disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SPACE}", "tmpfs",
                              str(mount_point)], capture_output=True, text=True)
    if mounted.returncode != 0:
        print(f"  mount refused ({mounted.stderr.strip() or mounted.returncode}): falling back "
              f"to RLIMIT_FSIZE {SPACE:,} bytes in a child (EFBIG, not ENOSPC)", flush=True)
        return fallback(folder)
    try:
        verdict.figure("disk", f"tmpfs of {SPACE:,} bytes mounted at {mount_point}")
        run(folder, mount_point, mount_point, verdict)
    finally:
        unmounted = subprocess.run(["umount", str(mount_point)], capture_output=True, text=True)
        verdict.check(unmounted.returncode == 0, f"umount failed: {unmounted.stderr.strip()}")
    return verdict.finish()


def fallback(folder: Path) -> int:
    """Rerun in a child that may write files of SPACE bytes at most."""

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (SPACE, SPACE))

    env = app_env(folder)
    return subprocess.run(child_argv("disk_full", "--file-size-limit", "--dir", str(folder)),
                          env=env, preexec_fn=limit_file_size).returncode


def run(folder: Path, docs: Path, mount_point: Path | None, verdict: Verdict) -> None:
    """The three saves that cannot fit, then one that can, in a window whose data folder is
    folder/data. `mount_point` None: a file size limit stands in for the full disk."""
    use_env(app_env(folder))

    from PySide6.QtWidgets import QApplication

    from app.engine.errors import GhostpenError
    from app.ui.documents import write_text_atomic
    from app.ui.main_window import MainWindow
    from app.ui.settings import Settings

    app = QApplication.instance() or QApplication([sys.argv[0]])
    answerer = DialogAnswerer()
    window = MainWindow(Settings())
    window.show()
    verdict.check(wait_for(lambda: window.engine_info is not None, 60),
                  "the model did not load")
    rng = random.Random(11)
    docs.mkdir(exist_ok=True)
    doc = docs / "chapter.txt"
    original = text_of_size(rng, ORIGINAL_BYTES)
    doc.write_text(original, "utf-8", newline="")
    verdict.check(window.document.open(doc), "the document did not open")
    cause = "No space left on device" if mount_point else "File too large"
    filler = docs / "filler.bin"

    cases = [("bigger than the space left", text_of_size(rng, 1_500_000))]
    if mount_point is not None:  # a file size limit has no free space to run out of
        cases += [("fits alone, not beside the old file", text_of_size(rng, 800_000)),
                  ("one character more on a full disk", original + "!")]
    intact = 0
    for label, text in cases:
        if label.endswith("full disk"):
            fill(filler)
        used_before = used_bytes(mount_point)
        window.editor.set_text(text)
        window.editor.document().setModified(True)
        answerer.seen.clear()
        try:
            saved = window.document.save()
        except Exception as error:  # what the error hook would show as "Something went wrong"
            verdict.check(False, f"{label}: the save raised {type(error).__name__}: {error}")
            saved = False
        app.processEvents()
        try:
            write_text_atomic(doc, text)
            raised = ""
        except GhostpenError as error:
            raised = str(error)
        except Exception as error:
            raised = f"{type(error).__name__}: {error}"
        print(f"  {label} ({len(text.encode()):,} bytes): {answerer.seen}", flush=True)
        verdict.check(not saved, f"{label}: the save said it succeeded")
        intact += verdict.check(doc.read_bytes() == original.encode("utf-8"),
                                f"{label}: the file on disk changed")
        leftovers = [p.name for p in docs.iterdir() if p.name.endswith(".tmp")]
        verdict.check(not leftovers, f"{label}: temporary files left: {leftovers}")
        verdict.check(used_bytes(mount_point) == used_before,
                      f"{label}: the disk holds {used_bytes(mount_point) - used_before:,} bytes "
                      "more than before the save")
        verdict.check(len(answerer.seen) == 1, f"{label}: {len(answerer.seen)} message boxes, "
                      "expected one")
        shown = answerer.seen[0].removeprefix("Save: ") if answerer.seen else ""
        verdict.check(shown == raised, f"{label}: the box says {shown!r}, the save path "
                      f"raised {raised!r}")
        verdict.check(window.statusBar().currentMessage() == shown,
                      f"{label}: the status bar says {window.statusBar().currentMessage()!r}")
        verdict.check("\n" not in shown and doc.name in shown and cause in shown,
                      f"{label}: the message is not one line naming {doc.name} and "
                      f"'{cause}': {shown!r}")
        verdict.check(window.editor.toPlainText() == text and window.document.is_modified(),
                      f"{label}: the new text is no longer in the editor, unsaved")
    if cases:
        verdict.figure("message", shown, summary=True)

    filler.unlink(missing_ok=True)
    final = text_of_size(rng, 500_000)
    window.editor.set_text(final)
    window.editor.document().setModified(True)
    answerer.seen.clear()
    saved = verdict.check(window.document.save() and doc.read_bytes() == final.encode("utf-8")
                          and not answerer.seen, "after freeing space the save did not succeed")
    verdict.figure("saves refused with the file byte-identical", f"{intact}/{len(cases)}",
                   summary=True)
    verdict.figure("the same save after freeing space", "saved" if saved else "failed")
    window.editor.document().setModified(False)
    window.shutdown()
    window.deleteLater()
    app.processEvents()


def text_of_size(rng: random.Random, size: int) -> str:
    text = ""
    while len(text.encode("utf-8")) < size:
        text += prose(rng, 2_000) + "\n\n"
    return text.encode("utf-8")[:size].decode("utf-8", errors="ignore")


def fill(path: Path) -> None:
    """Write `path` until the disk refuses another byte (in big writes, then small ones, so
    the last block is full too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for size in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)


def used_bytes(mount_point: Path | None) -> int:
    if mount_point is None:
        return 0
    stats = os.statvfs(mount_point)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


if __name__ == "__main__":
    sys.exit(main())
