"""Light, dark and system themes on the Fusion style, and the colours the editor paints with."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

THEMES = ("system", "light", "dark")
_SERIFS = ("Literata", "Charter", "Georgia", "Source Serif 4", "Noto Serif", "DejaVu Serif")


def apply_theme(app: QApplication, theme: str) -> bool:
    """Give `app` the Fusion style and the palette of `theme`; returns whether it is dark."""
    if app.style().name().lower() != "fusion":
        app.setStyle("Fusion")
    dark = theme == "dark" or (theme == "system" and system_prefers_dark())
    app.setPalette(dark_palette() if dark else light_palette())
    return dark


def system_prefers_dark() -> bool:
    return QGuiApplication.styleHints().colorScheme() == Qt.ColorScheme.Dark


def light_palette() -> QPalette:
    style = QStyleFactory.create("Fusion")
    palette = style.standardPalette()
    palette.setColor(QPalette.ColorRole.Base, QColor("#fdfcf9"))  # paper, not glare
    palette.setColor(QPalette.ColorRole.Text, QColor("#1f2328"))
    palette.setColor(QPalette.ColorRole.Highlight, QColor("#3d6fb4"))
    palette.setColor(QPalette.ColorRole.Link, QColor("#2f5f9e"))
    return palette


def dark_palette() -> QPalette:
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#26282b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1d1f21",
        QPalette.ColorRole.AlternateBase: "#2b2d30",
        QPalette.ColorRole.ToolTipBase: "#303236",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.PlaceholderText: "#8a8d91",
        QPalette.ColorRole.Text: "#e3e3e0",
        QPalette.ColorRole.Button: "#2e3033",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Light: "#3a3c40",
        QPalette.ColorRole.Midlight: "#33353a",
        QPalette.ColorRole.Mid: "#232527",
        QPalette.ColorRole.Dark: "#151617",
        QPalette.ColorRole.Shadow: "#0b0b0c",
        QPalette.ColorRole.Highlight: "#4a7fc7",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#7fb0f0",
        QPalette.ColorRole.LinkVisited: "#b39ddb",
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText,
                 QPalette.ColorRole.ButtonText):
        palette.setColor(disabled, role, QColor("#74777b"))
    palette.setColor(disabled, QPalette.ColorRole.Highlight, QColor("#3a3c40"))
    return palette


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Base).lightness() < 128


def generated_background(palette: QPalette) -> QColor:
    """The subtle wash behind text the model wrote and nobody has edited yet."""
    colour = QColor(palette.color(QPalette.ColorRole.Highlight))
    colour.setAlpha(56 if is_dark(palette) else 40)
    return colour


def probability_colour(p: float, palette: QPalette) -> QColor:
    """Token view: red for tokens the model thought unlikely, through amber, to green for sure."""
    p = min(max(p, 0.0), 1.0)
    hue = int(120 * p**0.5)  # sqrt spreads the usual 1-30 % range over more of the scale
    colour = QColor.fromHsv(hue, 170, 235)
    colour.setAlpha(95 if is_dark(palette) else 80)
    return colour


def writing_font(family: str, size: int) -> QFont:
    """The editor's font: the chosen family, else the first comfortable serif installed."""
    if not family:
        available = set(QFontDatabase.families())
        family = next((f for f in _SERIFS if f in available), "")
    font = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
    if family:
        font.setFamily(family)
    font.setPointSize(max(6, size))
    return font
