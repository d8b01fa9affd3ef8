"""The writing window: PySide6 only. The engine below knows nothing of Qt (docs/architecture.md)."""

from app.ui import qt_compat as _qt_compat  # noqa: F401  (must run before any signal is emitted)
