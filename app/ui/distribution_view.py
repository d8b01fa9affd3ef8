"""A small bar chart of the next-token candidates at the cursor, before and after sampling.

Each row is one token: a pale bar for the model's own probability, a solid one for the
probability after the sampler chain; rows the chain cut are greyed out, and so are rows that
would write a banned string ("banned"). Moving a slider redraws it, so temperature, top-k and
top-p can be watched at work. While the model writes, the row of the token it wrote is bold.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QHelpEvent, QPainter, QPaintEvent, QPalette
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from app.engine.events import Candidate
from app.ui.token_text import percent, visible_token

ROW_HEIGHT = 16
MAX_ROWS = 12
LABEL_WIDTH = 72
VALUE_WIDTH = 48


class DistributionView(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("distribution-view")
        self.setAccessibleName("Next-token distribution")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self._candidates: list[Candidate] = []
        self._banned_ids: frozenset[int] = frozenset()
        self._chosen_id: int | None = None
        self._empty_text = "The next-token chances at the cursor show here once a model is loaded."
        self._describe()

    def set_candidates(self, candidates: list[Candidate],
                       banned_ids: frozenset[int] = frozenset(),
                       chosen_id: int | None = None) -> None:
        """Show `candidates`; those in `banned_ids` as cut by a banned string, the one with
        `chosen_id` as the token the model wrote."""
        self._candidates = list(candidates)[:MAX_ROWS]
        self._banned_ids = banned_ids
        self._chosen_id = chosen_id
        self._describe()
        self.update()

    def set_empty_text(self, text: str) -> None:
        self._empty_text = text
        if not self._candidates:
            self._describe()
            self.update()

    def candidates(self) -> list[Candidate]:
        return list(self._candidates)

    def kept_count(self) -> int:
        return sum(c.kept for c in self._candidates)

    def chosen_id(self) -> int | None:
        return self._chosen_id

    def rows(self) -> list[tuple[str, str]]:
        """Each row as it reads: the token, and its share after sampling, "cut" or "banned"."""
        return [(visible_token(c.text), self._value_text(c)) for c in self._candidates]

    def _value_text(self, candidate: Candidate) -> str:
        if candidate.token_id in self._banned_ids:
            return "banned"
        return percent(candidate.p_final) if candidate.kept else "cut"

    def sizeHint(self) -> QSize:
        return QSize(240, MAX_ROWS * ROW_HEIGHT + 8)

    def minimumSizeHint(self) -> QSize:
        return QSize(160, MAX_ROWS * ROW_HEIGHT + 8)

    def _describe(self) -> None:
        if not self._candidates:
            self.setAccessibleDescription(self._empty_text)
            self.setToolTip(self._empty_text)
            return
        top = self._candidates[0]
        text = (f"{self.kept_count()} of the {len(self._candidates)} likeliest next tokens are "
                f"kept by the samplers. Likeliest: {visible_token(top.text)} at "
                f"{percent(top.p_model)}.")
        banned = sum(c.token_id in self._banned_ids for c in self._candidates)
        if banned:
            text += f" {banned} would write a banned string."
        chosen = next((c for c in self._candidates if c.token_id == self._chosen_id), None)
        if chosen is not None:
            text += f" The model wrote {visible_token(chosen.text)}."
        self.setAccessibleDescription(text)
        self.setToolTip("")

    def _row_at(self, point: QPoint) -> Candidate | None:
        row = (point.y() - 4) // ROW_HEIGHT
        return self._candidates[row] if 0 <= row < len(self._candidates) else None

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and self._candidates:
            assert isinstance(event, QHelpEvent)
            candidate = self._row_at(event.pos())
            if candidate is None:
                QToolTip.hideText()
            else:
                if candidate.token_id in self._banned_ids:
                    after = "cut: it would write a banned string (Never write)"
                elif candidate.kept:
                    after = f"{percent(candidate.p_final)} after sampling"
                else:
                    after = "cut by the samplers"
                if candidate.token_id == self._chosen_id:
                    after += "; the model wrote this one"
                QToolTip.showText(event.globalPos(),
                                  f"“{visible_token(candidate.text)}”: "
                                  f"{percent(candidate.p_model)} from the model, {after}", self)
            return True
        return super().event(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        palette = self.palette()
        text_colour = palette.color(QPalette.ColorRole.WindowText)
        if not self._candidates:
            painter.setPen(palette.color(QPalette.ColorGroup.Disabled,
                                         QPalette.ColorRole.WindowText))
            painter.drawText(self.rect().adjusted(4, 4, -4, -4),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             self._empty_text)
            return
        accent = palette.color(QPalette.ColorRole.Highlight)
        pale = QColor(accent)
        pale.setAlpha(60)
        muted = palette.color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.WindowText)
        scale = max(max(c.p_model, c.p_final) for c in self._candidates) or 1.0
        bar_width = max(10, self.width() - LABEL_WIDTH - VALUE_WIDTH - 8)
        plain = QFont(painter.font())
        bold = QFont(plain)
        bold.setBold(True)
        for row, candidate in enumerate(self._candidates):
            top = 4 + row * ROW_HEIGHT
            painter.setFont(bold if candidate.token_id == self._chosen_id else plain)
            label = painter.fontMetrics().elidedText(visible_token(candidate.text),
                                                     Qt.TextElideMode.ElideRight, LABEL_WIDTH - 6)
            painter.setPen(text_colour if candidate.kept else muted)
            painter.drawText(QRect(0, top, LABEL_WIDTH - 6, ROW_HEIGHT),
                             Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, label)
            bar = QRect(LABEL_WIDTH, top + 3, 0, ROW_HEIGHT - 6)
            painter.fillRect(bar.adjusted(0, 0, int(bar_width * candidate.p_model / scale), 0),
                             pale)
            if candidate.kept:
                painter.fillRect(
                    bar.adjusted(0, 3, int(bar_width * candidate.p_final / scale), -3), accent)
            value = self._value_text(candidate)
            painter.drawText(QRect(LABEL_WIDTH + bar_width + 4, top, VALUE_WIDTH, ROW_HEIGHT),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, value)
