"""Where Ghostpen keeps its files. Environment variables win, so tests and portable installs can
point everything at a folder of their own; otherwise the platform's usual places."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Ghostpen"


def config_dir() -> Path:
    """Settings and presets (GHOSTPEN_CONFIG_DIR, else the platformdirs user config dir)."""
    override = os.environ.get("GHOSTPEN_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir(APP_NAME, False))


def data_dir() -> Path:
    """Models, autosaves and logs (GHOSTPEN_DATA_DIR, else the platformdirs user data dir)."""
    override = os.environ.get("GHOSTPEN_DATA_DIR")
    return Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME, False))


def models_dir() -> Path:
    return data_dir() / "models"


def recovery_dir() -> Path:
    return data_dir() / "recovery"


def log_path() -> Path:
    return data_dir() / "logs" / "ghostpen.log"
