"""User settings: one defaults dict is the schema; values persist as JSON in the config dir.

A value read back from disk is kept only when it has the default's type, so a hand-edited or
old settings file can never put a string where a number belongs.
"""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

from app.engine.errors import GhostpenError
from app.engine.sampling_params import SamplingParams
from app.paths import config_dir
from app.ui.documents import write_text_atomic

log = logging.getLogger(__name__)

DEFAULTS: dict[str, Any] = {
    "geometry": "",  # base64 of QMainWindow.saveGeometry()
    "window_state": "",  # base64 of QMainWindow.saveState(): dock and toolbar places
    "theme": "system",  # system | light | dark
    "font_family": "",  # "" = a comfortable serif found on this system
    "font_size": 13,
    "last_model": "",  # folder name under the models dir
    "device": "auto",  # auto | cpu | cuda | directml
    "sampling": SamplingParams().to_json(),
    "preset": "Balanced",
    "presets": {},  # user presets: name -> SamplingParams JSON
    "recent_files": [],
    "last_dir": "",
    "token_view": False,
    "lens": False,  # the surprise lens on at start, as it was left
    "lens_by_probability": False,  # its colours by probability instead of by rank
    "autosave_interval_s": 5.0,
    # Ghost-text suggestions (autocomplete.py)
    "suggestions": True,
    "suggestion_delay_ms": 250,  # pause in typing before one is asked for
    "suggestion_tokens": 8,
    "suggestion_stop_at_sentence_end": False,
    "suggestion_alternatives": 3,  # computed together; Alt+] / Alt+[ cycle them
    "suggestion_preset": "",  # "" = the built-in cool one (ghost_text.SUGGESTION_PARAMS)
}

MAX_RECENT = 10


class Settings:
    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else config_dir() / "settings.json"
        self._values: dict[str, Any] = copy.deepcopy(DEFAULTS)
        self.load_error = ""  # one line for the status bar when the file could not be read
        self._load()

    def get(self, key: str) -> Any:
        return copy.deepcopy(self._values[key])

    def set(self, key: str, value: Any) -> None:
        if key not in DEFAULTS:
            raise KeyError(f"unknown setting {key!r}")
        if not _same_type(value, DEFAULTS[key]):
            raise TypeError(f"setting {key!r} takes {type(DEFAULTS[key]).__name__}")
        self._values[key] = copy.deepcopy(value)

    def save(self) -> None:
        try:
            write_text_atomic(self.path, json.dumps(self._values, indent=2, ensure_ascii=False))
        except GhostpenError:
            log.exception("settings not saved")

    def add_recent_file(self, path: Path) -> None:
        entry = str(Path(path).resolve())
        recent = [p for p in self.get("recent_files") if p != entry]
        self.set("recent_files", [entry, *recent][:MAX_RECENT])

    def _load(self) -> None:
        try:
            stored = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as error:
            self.load_error = f"Settings file {self.path} could not be read; defaults are used."
            log.warning("%s (%s)", self.load_error, error)
            return
        if not isinstance(stored, dict):
            return
        for key, value in stored.items():
            if key in DEFAULTS and _same_type(value, DEFAULTS[key]):
                self._values[key] = value


def _same_type(value: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))
