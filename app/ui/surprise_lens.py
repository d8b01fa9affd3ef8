"""The surprise lens: every token of the document coloured by how surprising the model found it
(GLTR's rank buckets, or its probability), the model's alternatives on hover, the perplexity of
the document and of the paragraph at the cursor, and passages that repeat an earlier one
underlined.

The worker scores the text as a background job a pause after each edit; the engine keeps the
scores of the unchanged prefix, so only what changed is run again, and the worker pauses the
job for any other request (a suggestion, a generation), resuming it afterwards. Nothing touches
the document: the marks are the editor's ExtraSelections (no undo step, no modified flag), and
they move with edits until the new scores arrive.

A long document must not stall the window (20,000 words are ~28,000 tokens): what takes time
per token (placing the scores in the document, the perplexity, the repeats) runs on a thread of
its own that touches no widget, and only the part of the document on screen, with a screenful
either side, is marked; scrolling past that marks the new part.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPoint, QSignalBlocker, QTimer, Signal
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

from app.engine.scoring import (
    RANK_BUCKETS,
    ScoreTable,
    TokenScore,
    is_word,
    probabilities_perplexity,
    repeated_runs,
)
from app.ui.editor import Editor
from app.ui.generation import GenerationController
from app.ui.theme import is_dark, probability_colour
from app.ui.thread_priority import give_way_to_the_window
from app.ui.token_text import percent, visible_token
from app.ui.worker import EngineWorker

log = logging.getLogger(__name__)

LENS_DELAY_MS = 600  # after the last edit, before the text is scored again
LENS_SHORTCUT = "Ctrl+Shift+L"
# A text this many characters longer than the part on screen is scored in two passes: up to the
# end of what shows, then the rest (the engine carries on from the first pass, so it costs
# nothing extra), so that the colours someone is looking at come first.
VISIBLE_FIRST_MARGIN = 2000
# Marks reach half a screenful, and at least this many characters, past either edge of the
# view, so that scrolling a little shows coloured text at once; scrolling further marks the part
# then on show.
MARK_MARGIN_CHARS = 1000
# After the first pass is on show, the rest is asked for this much later: the worker begins by
# reading the whole text in Python (~70 ms for 20,000 words), and the window's repaint with the
# first colours (10-25 ms), meanwhile waiting for the GIL at each call into Python, took 55 ms.
REST_AFTER_FIRST_MS = 100
# GLTR's colours, as hues: top 10 green, top 100 yellow, top 1000 red, beyond purple.
RANK_HUES = (110, 50, 5, 285)
RANK_LABELS = ("top 10", "top 100", "top 1000", "beyond")
PROBABILITY_STEPS = 20  # probability colours are rounded to this many steps of sqrt(p)
PROGRESS_WIDEST = "Scoring 100 %"


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


def document_positions(text: str) -> np.ndarray:
    """For each Python index into `text` (and its end), the QTextDocument position: they
    differ after a character outside the BMP, which is two UTF-16 units."""
    wide = np.frombuffer(text.encode("utf-32-le"), np.uint32) > 0xFFFF
    positions = np.zeros(len(text) + 1, np.int64)
    np.cumsum(1 + wide, out=positions[1:])
    return positions


@dataclass(frozen=True)
class PlacedTokens:
    """Scored tokens and where they sit in the document, as arrays (one entry per token), so
    that following a keystroke or marking the part on screen costs microseconds however long
    the document is."""

    table: ScoreTable
    starts: np.ndarray  # int64 document positions
    ends: np.ndarray
    leads: np.ndarray  # int64: white space before the token's first visible character
    blanks: np.ndarray  # bool: the token is all white space

    @staticmethod
    def empty() -> PlacedTokens:
        # No alternative of an empty table is ever read: any id-to-text will do.
        return PlacedTokens.of(ScoreTable.empty(str), np.zeros(0, np.int64),
                               np.zeros(0, np.int64))

    @staticmethod
    def of(table: ScoreTable, starts: np.ndarray, ends: np.ndarray) -> PlacedTokens:
        n = len(table)
        leads = np.fromiter((len(t) - len(t.lstrip()) for t in table.texts), np.int64, n)
        blanks = np.fromiter((not t.strip() for t in table.texts), bool, n)
        return PlacedTokens(table, starts, ends, leads, blanks)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def ranks(self) -> np.ndarray:
        return self.table.ranks

    @property
    def probabilities(self) -> np.ndarray:
        # float64, as a TokenScore's p reads: the colour steps are rounded from it.
        return self.table.probabilities.astype(np.float64)

    def take(self, indices: np.ndarray) -> PlacedTokens:
        return PlacedTokens(self.table.take(indices), self.starts[indices], self.ends[indices],
                            self.leads[indices], self.blanks[indices])

    def moved(self, starts: np.ndarray, ends: np.ndarray) -> PlacedTokens:
        return PlacedTokens(self.table, starts, ends, self.leads, self.blanks)

    def joined(self, other: PlacedTokens) -> PlacedTokens:
        return PlacedTokens(ScoreTable.joined([self.table, other.table]),
                            *(np.concatenate([a, b]) for a, b in (
                                (self.starts, other.starts), (self.ends, other.ends),
                                (self.leads, other.leads), (self.blanks, other.blanks))))

    def colour_keys(self, by_probability: bool) -> np.ndarray:
        """Per token, which colour it takes: its GLTR bucket (0-3), or its probability rounded
        to a step of sqrt(p) (0-PROBABILITY_STEPS)."""
        if by_probability:
            return np.round(np.sqrt(self.probabilities) * PROBABILITY_STEPS).astype(np.int64)
        return np.searchsorted(np.array(RANK_BUCKETS), self.ranks, side="left")


@dataclass(frozen=True)
class Placement:
    """What the GUI thread takes over from a scoring run in one step."""

    tokens: PlacedTokens
    perplexity: float | None
    repeats: list[tuple[int, int]]  # document positions [start, end)


def place_scores(text: str, scores: ScoreTable, shown: PlacedTokens,
                 prefix_end: int) -> Placement:
    """The scores of `text` placed in the document, with the document's perplexity and its
    repeated passages. A first pass (prefix_end >= 0: it scored text[:prefix_end]) keeps the
    tokens of `shown` past it on show until the second pass. Pure, and per token: run on the
    placing thread."""
    positions = document_positions(text)
    tokens = PlacedTokens.of(scores, positions[scores.starts], positions[scores.ends])
    if prefix_end >= 0:
        tokens = tokens.joined(shown.take(np.flatnonzero(shown.starts >= positions[prefix_end])))
    words = np.fromiter((is_word(t) for t in tokens.table.texts), bool, len(tokens))
    runs = repeated_runs(tokens.table.token_ids, words)
    # Underline from the first visible character: not the space before a word.
    repeats = [(int(tokens.starts[first] + tokens.leads[first]), int(tokens.ends[last - 1]))
               for first, last in runs]
    return Placement(tokens, probabilities_perplexity(tokens.table.probabilities), repeats)


def _placing_pool() -> ThreadPoolExecutor:
    """One thread for every window's lens: placements run one after another. Started when a
    lens is first turned on (starting a thread waits for it to run: that wait is better spent
    before the scores come); like the engine's, it gives way to the GUI thread."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lens-placing",
                                       initializer=give_way_to_the_window)
            _POOL.submit(lambda: None)
        return _POOL


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


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
        # Of a fixed size, and kept in place while empty: its text changes ten times a second
        # while scoring, and a label that may change size (or come and go) has the whole
        # window laid out again each time (the main window moves its docks and toolbars and
        # repaints itself: up to 70 ms of the GUI thread on a busy 2-core VM, 2026-12-02).
        self.progress_label = QLabel(self)
        self.progress_label.setAccessibleName("Lens progress")
        layout.addWidget(self.progress_label)
        self._fit_progress_label()
        self.paint_swatches()

    def show_progress(self, text: str) -> None:
        """"Scoring 40 %", or "" for none."""
        if text != self.progress_label.text():
            self.progress_label.setText(text)

    def _fit_progress_label(self) -> None:
        metrics = self.progress_label.fontMetrics()
        self.progress_label.setFixedSize(metrics.horizontalAdvance(PROGRESS_WIDEST) + 4,
                                         metrics.height())

    def by_probability(self) -> bool:
        return self.mode_button.isChecked()

    def make_room_for(self, message: str) -> None:
        """While the status bar shows a message, hide the colour key (the perplexity stays):
        with it the message had ~200 px at 1400 px wide and was cut ("…reached the maximu")."""
        for label in (*self.swatches, self.repeat_label):
            label.setVisible(not message)

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
        elif event.type() == QEvent.Type.FontChange:
            self._fit_progress_label()


class SurpriseLens(QObject):
    message = Signal(str)  # a one-line problem for the status bar
    _placed = Signal(int, object)  # from the placing thread: placement number, Placement

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
        self._waiting = False  # scores asked for and not yet on show
        self._placing = 0  # the placement last handed to the placing thread; the one wanted
        self._placing_request = 0  # the request it places when that is the last pass, else 0
        self._tokens = PlacedTokens.empty()  # moved by edits until new scores come
        self._perplexity: float | None = None  # the whole document's, as last scored
        self._repeats: list[tuple[int, int]] = []  # document positions [start, end)
        self._marked = (0, 0)  # the document positions the marks cover
        self._timer = QTimer(self, singleShot=True, interval=LENS_DELAY_MS)
        self._timer.timeout.connect(self.request)

        worker.score_progress.connect(self._on_progress)
        worker.scores_ready.connect(self._on_scores)
        worker.scoring_failed.connect(self._on_failed)
        worker.engine_loaded.connect(lambda _: self.request())  # another model: other scores
        self._placed.connect(self._on_placed)
        editor.document().contentsChange.connect(self._on_contents_change)
        editor.cursorPositionChanged.connect(self._show_perplexity)
        editor.verticalScrollBar().valueChanged.connect(self._follow_view)
        generation.running_changed.connect(self._on_generation_running)
        editor.viewport().installEventFilter(self)
        editor.installEventFilter(self)

    # --- on and off ---------------------------------------------------------------------------

    def enabled(self) -> bool:
        return self._on

    def busy(self) -> bool:
        """Scores are asked for, or being placed, and not yet on show."""
        return self._on and self._waiting

    def set_enabled(self, on: bool) -> None:
        if on == self._on:
            return
        self._on = on
        if self.action.isChecked() != on:
            self.action.setChecked(on)
        self.legend.setVisible(on)
        if on:
            _placing_pool()
            self.request()
            return
        self._timer.stop()
        self._worker.stop_scoring()
        self._request_id = 0
        self._placing += 1  # a placement still running is dropped when it comes
        self._waiting = False
        self._tokens = PlacedTokens.empty()
        self._repeats, self._perplexity = [], None
        self.legend.show_progress("")
        self.legend.perplexity_label.clear()
        self._show_marks([], [])

    def request(self) -> None:
        """Score the document now (the engine runs only what changed since the last time)."""
        if not self._on:
            return
        self._timer.stop()
        if self._generation.running:
            return  # the text is still growing: scored once the generation ends
        self._request_revision = self._editor.revision
        text = self._editor.toPlainText()
        visible_end = len(self._editor.text_before(self._view()[1]))
        self._prefix_end = visible_end if visible_end + VISIBLE_FIRST_MARGIN < len(text) else -1
        self._waiting = True
        self._request_id = self._worker.score(text[:visible_end] if self._prefix_end >= 0
                                              else text)

    def _view(self) -> tuple[int, int]:
        """The document positions [start, end) of the paragraphs on screen."""
        start, end = self._editor.visible_range()
        document = self._editor.document()
        last = document.findBlock(end)
        return document.findBlock(start).position(), last.position() + last.length() - 1

    def _on_generation_running(self, running: bool) -> None:
        if self._on and not running:
            self._timer.start()

    def _on_contents_change(self, pos: int, removed: int, added: int) -> None:
        if not self._on or (removed == 0 and added == 0):
            return
        # Until the new scores come, the tokens the edit did not touch keep theirs (the editor
        # moves its washes and marks itself; the positions here are moved by hand).
        tokens, shift = self._tokens, added - removed
        after = tokens.starts >= pos + removed
        keep = (tokens.ends <= pos) | after
        moved = tokens.moved(np.where(after, tokens.starts + shift, tokens.starts),
                             np.where(after, tokens.ends + shift, tokens.ends))
        self._tokens = moved if keep.all() else moved.take(np.flatnonzero(keep))
        self._repeats = [(a + shift, b + shift) if a >= pos + removed else (a, b)
                         for a, b in self._repeats if b <= pos or a >= pos + removed]
        first, last = self._marked
        self._marked = (first + shift if first >= pos + removed else first,
                        max(first, last + shift) if last >= pos else last)
        self._timer.start()

    # --- results ------------------------------------------------------------------------------

    def _on_progress(self, request_id: int, done: int, total: int) -> None:
        if request_id == self._request_id and self._on and done < total:
            self.legend.show_progress(f"Scoring {100 * done // max(total, 1)} %")

    def _on_failed(self, request_id: int, message: str) -> None:
        if request_id == self._request_id:
            self._waiting = False
            self.legend.show_progress("")
            self.message.emit(message)

    def _on_scores(self, request_id: int, scores: ScoreTable) -> None:
        if request_id != self._request_id or not self._on:
            return
        self.legend.show_progress("")
        if self._editor.revision != self._request_revision:
            self._timer.start()  # edited meanwhile: these offsets are stale; score again
            return
        text = self._editor.toPlainText()
        prefix_end, self._prefix_end = self._prefix_end, -1
        self._placing += 1
        self._placing_request = request_id if prefix_end < 0 else 0
        _placing_pool().submit(self._place, self._placing, text, scores, self._tokens,
                               prefix_end)

    def _place(self, placing: int, text: str, scores: ScoreTable, shown: PlacedTokens,
               prefix_end: int) -> None:
        """On the placing thread: place the scores and hand them to the GUI thread."""
        placement: Placement | None = None
        try:
            placement = place_scores(text, scores, shown, prefix_end)
        except Exception:
            log.exception("placing the lens's scores failed")
        with contextlib.suppress(RuntimeError):  # the window closed meanwhile
            self._placed.emit(placing, placement)

    def _on_placed(self, placing: int, placement: Placement | None) -> None:
        if placing != self._placing or not self._on:
            return  # turned off, or newer scores came meanwhile
        if placement is None:
            self._waiting = False
            self.message.emit("The surprise lens could not colour this text (see the log); "
                              "turn it off and on to try again.")
            return
        if self._editor.revision != self._request_revision:
            self._timer.start()  # edited while it was placed: the positions are stale
            return
        if self._placing_request == self._request_id:
            self._waiting = False  # the last pass: no other is running
        self._tokens, self._perplexity = placement.tokens, placement.perplexity
        self._repeats = placement.repeats
        self._paint()
        # The perplexity in a later turn of the event loop, the window's repaint with the new
        # marks (10-25 ms) being a step of its own rather than one long stall with this.
        QTimer.singleShot(0, self, lambda: self._show_placed(placing))
        if self._placing_request == 0:
            # The first pass is on show; the rest once it is painted (the earlier scores past
            # it stay on show until then).
            QTimer.singleShot(REST_AFTER_FIRST_MS, self, lambda: self._score_rest(placing))

    def _show_placed(self, placing: int) -> None:
        if placing == self._placing and self._on:
            self._show_perplexity()

    def _score_rest(self, placing: int) -> None:
        if (placing == self._placing and self._on
                and self._editor.revision == self._request_revision):
            self._request_id = self._worker.score(self._editor.toPlainText())

    def scores(self) -> list[PlacedScore]:
        tokens = self._tokens
        return [PlacedScore(int(a), int(b), s)
                for a, b, s in zip(tokens.starts, tokens.ends, tokens.table, strict=True)]

    def repeats(self) -> list[tuple[int, int]]:
        return list(self._repeats)

    # --- painting -----------------------------------------------------------------------------

    def _colour(self, key: int, palette: QPalette) -> QColor:
        """The colour of a colour key (PlacedTokens.colour_keys)."""
        if self.legend.by_probability():
            step = key / PROBABILITY_STEPS
            return probability_colour(step * step, palette)
        return rank_colour(key, palette)

    def _follow_view(self) -> None:
        """Mark the part on screen once a scroll or a resize has brought unmarked text in."""
        if not self._on or not len(self._tokens):
            return
        first, last = self._view()
        if first < self._marked[0] or last > self._marked[1]:
            self._paint()

    def _paint(self) -> None:
        """Mark the tokens on screen, and a margin either side: a wash per run of neighbouring
        tokens of one colour, an underline per repeated passage."""
        if not self._on:
            return
        first, last = self._view()
        margin = max(MARK_MARGIN_CHARS, (last - first) // 2)
        self._marked = (max(0, first - margin), last + margin)
        tokens = self._tokens
        lo = int(np.searchsorted(tokens.ends, self._marked[0], side="right"))
        hi = int(np.searchsorted(tokens.starts, self._marked[1], side="left"))
        keys = tokens.colour_keys(self.legend.by_probability())[lo:hi]
        blanks, starts, ends = tokens.blanks[lo:hi], tokens.starts[lo:hi], tokens.ends[lo:hi]
        # A token joins the run of the one before when both show and touch in one colour; a
        # run starts at its first visible character: GPT-2 words carry the space before them,
        # and a wash over that space would glue each word to the one before it.
        joins = ~blanks[1:] & ~blanks[:-1] & (keys[1:] == keys[:-1]) & (ends[:-1] == starts[1:])
        heads = np.flatnonzero(~blanks & ~np.concatenate([[False], joins]))
        tails = np.flatnonzero(~blanks & ~np.concatenate([joins, [False]]))
        palette = self._editor.palette()
        # Not np.unique over the keys: its first call imports numpy.ma, 10-20 ms on this thread
        colours: dict[int, QColor] = {}
        washes: list[tuple[int, int, QColor]] = []
        for head, tail in zip(heads.tolist(), tails.tolist(), strict=True):
            key = int(keys[head])
            if key not in colours:
                colours[key] = self._colour(key, palette)
            washes.append((int(starts[head] + tokens.leads[lo + head]), int(ends[tail]),
                           colours[key]))
        underline = QTextCharFormat()
        underline.setUnderlineStyle(QTextCharFormat.UnderlineStyle.SingleUnderline)
        underline.setUnderlineColor(palette.color(QPalette.ColorRole.Text))
        repeats = [(start, end, underline) for start, end in self._repeats
                   if end > self._marked[0] and start < self._marked[1]]
        self._show_marks(washes, self._marks(repeats))

    def _show_marks(self, washes: list[tuple[int, int, QColor]],
                    marks: list[QTextEdit.ExtraSelection]) -> None:
        """Hand the washes and the marks to the editor, its signals held meanwhile: Qt asks
        for a repaint of each mark on screen that changed, and each request called into Python
        (the editor's updateRequest slot), waiting for the GIL every time another thread ran
        Python (while placing or scoring); the repaints themselves still happen."""
        blocker = QSignalBlocker(self._editor)
        try:
            self._editor.set_lens_marks(washes, marks)
        finally:
            blocker.unblock()

    def _marks(self, runs: list[tuple[int, int, QTextCharFormat]]
               ) -> list[QTextEdit.ExtraSelection]:
        """An ExtraSelection per [start, end) in its format."""
        document = self._editor.document()
        limit = document.characterCount() - 1
        marks: list[QTextEdit.ExtraSelection] = []
        for start, end, fmt in runs:
            selection = QTextEdit.ExtraSelection()
            cursor = QTextCursor(document)
            cursor.setPosition(min(start, limit))
            cursor.setPosition(min(end, limit), QTextCursor.MoveMode.KeepAnchor)
            selection.cursor = cursor
            selection.format = fmt
            marks.append(selection)
        return marks

    # --- reading it ---------------------------------------------------------------------------

    def score_at(self, position: int) -> PlacedScore | None:
        """The scored token covering document position `position`, if any."""
        tokens = self._tokens
        i = int(np.searchsorted(tokens.starts, position, side="right")) - 1
        if i >= 0 and tokens.starts[i] <= position < tokens.ends[i]:
            return PlacedScore(int(tokens.starts[i]), int(tokens.ends[i]), tokens.table[i])
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
        tokens = self._tokens
        first = int(np.searchsorted(tokens.starts, start))
        last = int(np.searchsorted(tokens.starts, end))
        shown = ~tokens.blanks[first:last]
        return self._perplexity, probabilities_perplexity(
            tokens.table.probabilities[first:last][shown])

    def _show_perplexity(self) -> None:
        if not self._on or not len(self._tokens):
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
        elif watched is self._editor.viewport() and event.type() == QEvent.Type.Resize:
            self._follow_view()
        elif (watched is self._editor.viewport() and event.type() == QEvent.Type.ToolTip
              and isinstance(event, QHelpEvent)):
            if self._editor.token_view() and self._editor.token_at_point(event.pos()) is not None:
                # A generated token with Token Colours on has its own popup (its alternatives
                # when it was written, with Use and Regenerate): one popup at a time.
                QToolTip.hideText()
                return True
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

