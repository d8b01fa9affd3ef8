"""The engine and the converter run headless: importing them must never import Qt."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_engine_and_models_do_not_import_qt() -> None:
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for folder in ("app/engine", "models")
        for p in (ROOT / folder).glob("*.py")
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "qt = sorted(m for m in sys.modules if m.startswith('PySide6'))\n"
        "print(','.join(qt))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"Qt imported by the engine: {result.stdout}"


def test_ruff_bans_qt_outside_ui() -> None:
    """The rule in pyproject.toml is what keeps new engine code honest; prove it bites."""
    probe = ROOT / "app" / "engine" / "_qt_probe_for_test.py"
    probe.write_text("import PySide6\n")
    try:
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--select", "TID251", str(probe)],
            cwd=ROOT, capture_output=True, text=True,
        )
    finally:
        probe.unlink()
    assert result.returncode != 0
    assert "Qt belongs in app/ui only" in result.stdout
