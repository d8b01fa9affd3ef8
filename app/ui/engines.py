"""Where the window's engine comes from: the one factory the window calls, and its default.

The window asks `factory(device)` for an engine on the worker thread, so a slow model load
never freezes it. The default factory looks for an installed model at call time (so
Models ▸ Reload finds one added meanwhile) and raises NoModelError, which the window shows as
its welcome state. GHOSTPEN_FAKE_ENGINE=1 swaps in the fake engine for demos.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from app import model_store
from app.engine.errors import GhostpenError
from app.engine.protocol import TextEngine
from app.engine.providers import DEVICES as DEVICES  # the Device menu's choices, in its order

EngineFactory = Callable[[str], TextEngine]  # device (one of DEVICES) -> engine
DEVICE_LABELS = {"auto": "&Automatic", "cpu": "&CPU", "cuda": "CU&DA (NVIDIA)",
                 "directml": "&DirectML (Windows)"}


class NoModelError(GhostpenError):
    """No model is installed yet: the window's welcome state, not a failure."""


def installed_models(root: Path | None = None) -> list[Path]:
    """Usable model folders under the models dir, as the model store lists them (ours, and
    foreign exports with their .onnx in an onnx/ subfolder too)."""
    return [m.path for m in model_store.list_models(root) if m.usable]


def choose_model(preferred: str, root: Path | None = None) -> Path | None:
    models = installed_models(root)
    return next((m for m in models if m.name == preferred), models[0] if models else None)


def default_engine_factory(preferred_model: Callable[[], str]) -> EngineFactory:
    if os.environ.get("GHOSTPEN_FAKE_ENGINE") == "1":
        from app.engine.fake import FakeEngine

        return lambda device: FakeEngine(token_delay_s=0.02)

    def load(device: str) -> TextEngine:
        model = choose_model(preferred_model())
        if model is None:
            raise NoModelError("No model is installed yet.")
        try:
            from app.engine.engine import load_engine
        except ImportError as error:
            raise GhostpenError(f"This copy of Ghostpen cannot load models yet ({error}).") \
                from error
        # The engine's stats are a read-only property where the protocol names an attribute.
        return cast(TextEngine, load_engine(model, device))

    return load


def short_provider(provider: str) -> str:
    """'CUDAExecutionProvider' -> 'CUDA'."""
    return provider.removesuffix("ExecutionProvider") or provider
