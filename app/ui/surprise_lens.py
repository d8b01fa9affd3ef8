"""The surprise lens: every token of the document coloured by how surprising the model found it
(GLTR's rank buckets, or its probability), the model's alternatives on hover, the perplexity of
the document and of the paragraph at the cursor, and passages that repeat an earlier one
underlined.

The worker scores the text as a background job a pause after each edit; the engine keeps the
scores of the unchanged prefix, so only what changed is run again, and the worker pauses the
job for any other request (a suggestion, a generation), resuming it afterwards. Nothing touches
the document: the marks are the editor's ExtraSelections (no undo step, no modified flag), and
they move with edits until the new scores arrive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QColor,
    QHelpEvent,
    QKeySequence,
    QPalette,
    QTextCharFormat,
    QTextCursor,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QTextEdit, QToolButton, QToolTip, QWidget

from app.engine.scoring import TokenScore, is_word, perplexity, rank_bucket, repeated_runs
from app.ui.editor import Editor
from app.ui.generation import GenerationController
from app.ui.theme import is_dark, probability_colour
from app.ui.token_text import percent, visible_token
from app.ui.worker import EngineWorker

LENS_DELAY_MS = 600  # after the last edit, before the text is scored again
LENS_SHORTCUT = "Ctrl+Shift+L"
# A text this many characters longer than the part on screen is scored in two passes: up to the
# end of what shows, then the rest (the engine carries on from the first pass, so it costs
# nothing extra), so that the colours someone is looking at come first.
VISIBLE_FIRST_MARGIN = 2000
# GLTR's colours, as hues: top 10 green, top 100 yellow, top 1000 red, beyond purple.
RANK_HUES = (110, 50, 5, 285)
RANK_LABELS = ("top 10", "top 100", "top 1000", "beyond")
PROBABILITY_STEPS = 20  # probability colours are rounded to this many steps of sqrt(p)


def rank_colour(bucket: int, palette: QPalette) -> QColor:
    """A wash that keeps the text readable on the light and the dark paper alike."""
    dark = is_dark(palette)
    colour = QColor.fromHsv(RANK_HUES[bucket], 150 if dark else 120, 200 if dark else 245)
    colour.setAlpha(110 if dark else 150)
    return colour


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n:,}{suffix}"


def _figure(value: float) -> str:
    """A perplexity as a person reads it: 3.2, 48.7, 1,221."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


@dataclass(frozen=True)
class PlacedScore:
    """A token's score and where its text sits in the document (QTextDocument positions)."""

    start: int
    end: int
    score: TokenScore


def document_positions(text: str) -> list[int]:
    """For each Python index into `text` (and its end), the QTextDocument position: they
    differ after a character outside the BMP, which is two UTF-16 units."""
    positions = [0] * (len(text) + 1)
    at = 0
    for i, char in enumerate(text):
        positions[i] = at
        at += 2 if ord(char) > 0xFFFF else 1
    positions[len(text)] = at
    return positions


class LensLegend(QWidget):
    """The status bar's strip while the lens is on: what the colours mean, the colouring mode,
    the perplexities and the progress of a scoring run."""

    mode_changed = Signal(bool)  # True: colour by probability

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lens-legend")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 0, 6, 0)
        layout.setSpacing(4)
        self.mode_button = QToolButton(self)
        self.mode_button.setCheckable(True)
        self.mode_button.setAutoRaise(True)
        self.mode_button.setToolTip("Colour tokens by their rank among the model's choices, or "
                                    "by their probability")
        self.mode_button.toggled.connect(self._on_mode)
        layout.addWidget(self.mode_button)
        self.swatches: list[QLabel] = []
        for _ in RANK_LABELS:
            swatch = QLabel(self)
            swatch.setContentsMargins(4, 0, 4, 0)
            layout.addWidget(swatch)
            self.swatches.append(swatch)
        self.repeat_label = QLabel("<u>repeat</u>", self)
        self.repeat_label.setToolTip("Underlined: a run of four or more tokens that appeared "
                                     "earlier in the document")
        layout.addWidget(self.repeat_label)
        self.perplexity_label = QLabel(self)
        self.perplexity_label.setAccessibleName("Perplexity")
        self.perplexity_label.setToolTip("How surprised the model is, on average, by the "
                                         "document and by the paragraph at the cursor: lower "
                                         "is more predictable")
        self.perplexity_label.setContentsMargins(8, 0, 0, 0)
        layout.addWidget(self.perplexity_label)
        self.progress_label = QLabel(self)
        self.progress_label.setAccessibleName("Lens progress")
        layout.addWidget(self.progress_label)
        self.paint_swatches()

    def by_probability(self) -> bool:
        return self.mode_button.isChecked()

    def _on_mode(self, on: bool) -> None:
        self.paint_swatches()
        self.mode_changed.emit(on)

    def paint_swatches(self) -> None:
        palette = self.palette()
        probability = self.by_probability()
        self.mode_button.setText("By probability" if probability else "By rank")
        examples = (0.8, 0.2, 0.04, 0.002)
        for index, swatch in enumerate(self.swatches):
            if probability:
                colour = probability_colour(examples[index], palette)
                label = percent(examples[index])
            else:
                colour = rank_colour(index, palette)
                label = RANK_LABELS[index]
            swatch.setText(label)
            swatch.setStyleSheet(f"background: rgba({colour.red()}, {colour.green()}, "
                                 f"{colour.blue()}, {colour.alpha()}); border-radius: 3px;")

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange:
            self.paint_swatches()


class SurpriseLens(QObject):
    message = Signal(str)  # a one-line problem for the status bar

    def __init__(self, worker: EngineWorker, editor: Editor, generation: GenerationController,
                 parent: QWidget) -> None:
        super().__init__(parent)
        self._worker = worker
        self._editor = editor
        self._generation = generation
        self.action = QAction("Surprise &Lens", parent)
        self.action.setCheckable(True)
        self.action.setShortcut(QKeySequence(LENS_SHORTCUT))
        tip = ("Colour every token by how surprising the model finds it; hover one for the "
               "model's alternatives")
        self.action.setStatusTip(tip)
        self.action.setToolTip(f"{tip} ({LENS_SHORTCUT})")
        self.action.toggled.connect(self.set_enabled)
        self.legend = LensLegend(parent)
        self.legend.hide()
        self.legend.mode_changed.connect(lambda _: self._paint())

        self._on = False
        self._request_id = 0
        self._request_revision = -1
        self._prefix_end = -1  # where the running pass's text ends, -1 when it is the whole
        # The scores and where their tokens sit in the document (positions moved by edits);
        # arrays, so that following a keystroke costs microseconds on a long document.
        self._scores: list[TokenScore] = []
        self._starts = np.zeros(0, np.int64)
        self._ends = np.zeros(0, np.int64)
        self._perplexity: float | None = None  # the whole document's, as last scored
        self._repeats: list[tuple[int, int]] = []  # document positions [start, end)
        self._timer = QTimer(self, singleShot=True, interval=LENS_DELAY_MS)
        self._timer.timeout.connect(self.request)

        worker.score_progress.connect(self._on_progress)
        worker.scores_ready.connect(self._on_scores)
        worker.scoring_failed.connect(self._on_failed)
        worker.engine_loaded.connect(lambda _: self.request())  # another model: other scores
        editor.document().contentsChange.connect(self._on_contents_change)
        editor.cursorPositionChanged.connect(self._show_perplexity)
        generation.running_changed.connect(self._on_generation_running)
        editor.viewport().installEventFilter(self)
        editor.installEventFilter(self)

    # --- on and off ---------------------------------------------------------------------------

    def enabled(self) -> bool:
        return self._on

    def set_enabled(self, on: bool) -> None:
        if on == self._on:
            return
        self._on = on
        if self.action.isChecked() != on:
            self.action.setChecked(on)
        self.legend.setVisible(on)
        if on:
            self.request()
            return
        self._timer.stop()
        self._worker.stop_scoring()
        self._request_id = 0
        self._set_scores([], np.zeros(0, np.int64), np.zeros(0, np.int64))
        self._repeats, self._perplexity = [], None
        self.legend.progress_label.clear()
        self.legend.perplexity_label.clear()
        self._editor.set_lens_marks([])

    def request(self) -> None:
        """Score the document now (the engine runs only what changed since the last time)."""
        if not self._on:
            return
        self._timer.stop()
        if self._generation.running:
            return  # the text is still growing: scored once the generation ends
        self._request_revision = self._editor.revision
        text = self._editor.toPlainText()
        visible_end = len(self._editor.text_before(self._end_of_view()))
        self._prefix_end = visible_end if visible_end + VISIBLE_FIRST_MARGIN < len(text) else -1
        self._request_id = self._worker.score(text[:visible_end] if self._prefix_end >= 0
                                              else text)

    def _end_of_view(self) -> int:
        """The document position where the last paragraph the editor shows ends."""
        viewport = self._editor.viewport()
        corner = QPoint(viewport.width() - 1, viewport.height() - 1)
        block = self._editor.cursorForPosition(corner).block()
        return block.position() + block.length() - 1

    def _on_generation_running(self, running: bool) -> None:
        if self._on and not running:
            self._timer.start()

    def _on_contents_change(self, pos: int, removed: int, added: int) -> None:
        if not self._on or (removed == 0 and added == 0):
            return
        # Until the new scores come, the tokens the edit did not touch keep theirs (the
        # ExtraSelections' cursors move by themselves; the positions here are moved by hand).
        shift = added - removed
        after = self._starts >= pos + removed
        keep = (self._ends <= pos) | after
        starts = np.where(after, self._starts + shift, self._starts)
        ends = np.where(after, self._ends + shift, self._ends)
        if keep.all():
            self._starts, self._ends = starts, ends
        else:
            kept = np.flatnonzero(keep)
            self._set_scores([self._scores[i] for i in kept], starts[kept], ends[kept])
        self._repeats = [(a + shift, b + shift) if a >= pos + removed else (a, b)
                         for a, b in self._repeats if b <= pos or a >= pos + removed]
        self._timer.start()

    # --- results ------------------------------------------------------------------------------

    def _on_progress(self, request_id: int, done: int, total: int) -> None:
        if request_id == self._request_id and self._on and done < total:
            self.legend.progress_label.setText(f"Scoring {100 * done // max(total, 1)} %")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request_id:
            self.legend.progress_label.clear()
            self.message.emit(message)

    def _on_scores(self, request_id: int, scores: list[TokenScore]) -> None:
        if request_id != self._request_id or not self._on:
            return
        self.legend.progress_label.clear()
        if self._editor.revision != self._request_revision:
            self._timer.start()  # edited meanwhile: these offsets are stale; score again
            return
        text = self._editor.toPlainText()
        positions = document_positions(text)
        starts = np.array([positions[s.start] for s in scores], np.int64)
        ends = np.array([positions[s.end] for s in scores], np.int64)
        if self._prefix_end >= 0:
            # The first pass: the earlier scores past it stay on show until the second.
            rest = np.flatnonzero(self._starts >= positions[self._prefix_end])
            scores = scores + [self._scores[i] for i in rest]
            starts = np.concatenate([starts, self._starts[rest]])
            ends = np.concatenate([ends, self._ends[rest]])
            self._prefix_end = -1
            self._request_id = self._worker.score(text)
        self._set_scores(scores, starts, ends)
        self._perplexity = perplexity(scores)
        ids = [s.token_id for s in scores]
        runs = repeated_runs(ids, [is_word(s.text) for s in scores])
        self._repeats = []
        for first, last in runs:
            # Underline from the first visible character: not the space before a word.
            text = scores[first].text
            lead = len(text) - len(text.lstrip())
            self._repeats.append((int(self._starts[first]) + lead, int(self._ends[last - 1])))
        self._paint()
        self._show_perplexity()

    def _set_scores(self, scores: list[TokenScore], starts: np.ndarray,
                    ends: np.ndarray) -> None:
        self._scores, self._starts, self._ends = scores, starts, ends

    def scores(self) -> list[PlacedScore]:
        return [PlacedScore(int(a), int(b), s)
                for a, b, s in zip(self._starts, self._ends, self._scores, strict=True)]

    def repeats(self) -> list[tuple[int, int]]:
        return list(self._repeats)

    # --- painting -----------------------------------------------------------------------------

    def _colour(self, score: TokenScore, palette: QPalette) -> QColor:
        if self.legend.by_probability():
            step = round(math.sqrt(score.p) * PROBABILITY_STEPS) / PROBABILITY_STEPS
            return probability_colour(step * step, palette)
        return rank_colour(rank_bucket(score.rank), palette)

    def _paint(self) -> None:
        if not self._on:
            return
        palette = self._editor.palette()
        marks: list[QTextEdit.ExtraSelection] = []
        run: list[int] | None = None  # [start, end] of tokens of one colour
        run_colour: QColor | None = None
        for placed in self.scores():
            colour = self._colour(placed.score, palette)
            blank = not placed.score.text.strip()
            if run is not None and not blank and colour == run_colour and run[1] == placed.start:
                run[1] = placed.end
                continue
            if run is not None and run_colour is not None:
                marks.append(self._mark(run[0], run[1], background=run_colour))
            # A run starts at its first visible character: GPT-2 words carry the space before
            # them, and a wash over that space would glue each word to the one before it.
            lead = len(placed.score.text) - len(placed.score.text.lstrip())
            run, run_colour = (None, None) if blank else ([placed.start + lead, placed.end],
                                                          colour)
        if run is not None and run_colour is not None:
            marks.append(self._mark(run[0], run[1], background=run_colour))
        for start, end in self._repeats:
            marks.append(self._mark(start, end, underline=palette.color(QPalette.ColorRole.Text)))
        self._editor.set_lens_marks(marks)

    def _mark(self, start: int, end: int, background: QColor | None = None,
              underline: QColor | None = None) -> QTextEdit.ExtraSelection:
        selection = QTextEdit.ExtraSelection()
        cursor = QTextCursor(self._editor.document())
        limit = self._editor.document().characterCount() - 1
        cursor.setPosition(min(start, limit))
        cursor.setPosition(min(end, limit), QTextCursor.MoveMode.KeepAnchor)
        selection.cursor = cursor
        fmt = QTextCharFormat()
        if background is not None:
            fmt.setBackground(background)
        if underline is not None:
            fmt.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
            fmt.setUnderlineColor(underline)
        selection.format = fmt
        return selection

    # --- reading it ---------------------------------------------------------------------------

    def score_at(self, position: int) -> PlacedScore | None:
        """The scored token covering document position `position`, if any."""
        i = int(np.searchsorted(self._starts, position, side="right")) - 1
        if i >= 0 and self._starts[i] <= position < self._ends[i]:
            return PlacedScore(int(self._starts[i]), int(self._ends[i]), self._scores[i])
        return None

    def tooltip_at(self, position: int) -> str:
        """What hovering the character at `position` shows; "" where nothing was scored."""
        placed = self.score_at(position)
        if placed is None:
            return ""
        s = placed.score
        lines = [f"“{visible_token(s.text)}”: the model's {ordinal(s.rank)} choice here, "
                 f"{percent(s.p)}"]
        if s.alternatives:
            lines.append("Its top choices: " + ", ".join(
                f"“{visible_token(a.text)}” {percent(a.p)}" for a in s.alternatives))
        if any(a <= position < b for a, b in self._repeats):
            lines.append("Repeats a passage that appeared earlier.")
        return "\n".join(lines)

    def perplexities(self) -> tuple[float | None, float | None]:
        """The document's perplexity and the paragraph at the cursor's."""
        block = self._editor.textCursor().block()
        start, end = block.position(), block.position() + block.length() - 1
        first = int(np.searchsorted(self._starts, start))
        last = int(np.searchsorted(self._starts, end))
        paragraph = [s for s in self._scores[first:last] if s.text.strip()]
        return self._perplexity, perplexity(paragraph)

    def _show_perplexity(self) -> None:
        if not self._on or not self._scores:
            return
        whole, paragraph = self.perplexities()
        text = f"Perplexity {_figure(whole)}" if whole is not None else ""
        if paragraph is not None:
            text += f" · paragraph {_figure(paragraph)}"
        self.legend.perplexity_label.setText(text)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if not self._on:
            return False
        if watched is self._editor and event.type() == QEvent.Type.PaletteChange:
            self._paint()
        elif (watched is self._editor.viewport() and event.type() == QEvent.Type.ToolTip
              and isinstance(event, QHelpEvent)):
            text = self.tooltip_at(self._position_at(event.pos()))
            if text:
                QToolTip.showText(event.globalPos(), text, self._editor.viewport())
            else:
                QToolTip.hideText()
            return True
        return False

    def _position_at(self, point: QPoint) -> int:
        """The document position of the character under a viewport point."""
        cursor = self._editor.cursorForPosition(point)
        position = cursor.position()
        if point.x() < self._editor.cursorRect(cursor).x() and position > 0:
            position -= 1  # the cursor lands after a character when the point is in its half
        return position

