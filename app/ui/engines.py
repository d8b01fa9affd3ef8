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


# A draft model pays when the model's pass costs many of the draft's: gpt2 (124M) for
# gpt2-large (774M) or gpt2-xl (1.56B), not for gpt2-medium (355M), whose pass costs under
# three of gpt2's (int8 decode, 2 threads, 2026-11-28: 37 tok/s large, 21 xl, 171 gpt2).
DRAFT_MIN_PARAMS = 600_000_000  # the model's size from which a draft is looked for
DRAFT_MAX_SHARE = 0.2  # the draft's size at most this share of the model's


def installed_models(root: Path | None = None) -> list[model_store.InstalledModel]:
    """Usable models under the models dir, as the model store lists them (ours, and foreign
    exports with their .onnx in an onnx/ subfolder too)."""
    return [m for m in model_store.list_models(root) if m.usable]


def choose_model(preferred: str, models: list[model_store.InstalledModel]
                 ) -> model_store.InstalledModel | None:
    """The model named `preferred`, else the first installed one."""
    return next((m for m in models if m.name == preferred), models[0] if models else None)


def choose_draft(model: model_store.InstalledModel,
                 installed: list[model_store.InstalledModel]) -> model_store.InstalledModel | None:
    """The installed model to guess `model`'s next tokens: the largest of Ghostpen's own
    conversions small enough to pay (see DRAFT_MIN_PARAMS), in the lowest-bit precision
    among those; None when none is."""
    if model.foreign or model.n_params < DRAFT_MIN_PARAMS:
        return None
    bits = {"int4": 4, "int8": 8, "fp16": 16, "fp32": 32}
    candidates = [m for m in installed
                  if m.usable and not m.foreign and m.precision in bits and m.path != model.path
                  and 0 < m.n_params <= DRAFT_MAX_SHARE * model.n_params]
    if not candidates:
        return None
    return max(candidates, key=lambda m: (m.n_params, -bits[m.precision]))


def default_engine_factory(preferred_model: Callable[[], str]) -> EngineFactory:
    if os.environ.get("GHOSTPEN_FAKE_ENGINE") == "1":
        from app.engine.fake import FakeEngine

        return lambda device: FakeEngine(token_delay_s=0.02)

    def load(device: str) -> TextEngine:
        models = installed_models()
        model = choose_model(preferred_model(), models)
        if model is None:
            raise NoModelError("No model is installed yet.")
        try:
            from app.engine.engine import load_engine
        except ImportError as error:
            raise GhostpenError(f"This copy of Ghostpen cannot load models yet ({error}).") \
                from error
        draft = choose_draft(model, models)
        if draft is not None:
            try:
                engine = load_engine(model.path, device, draft_dir=draft.path)
            except GhostpenError:  # e.g. another vocabulary: the model alone, as before
                engine = load_engine(model.path, device)
        else:
            engine = load_engine(model.path, device)
        # The engine's stats are a read-only property where the protocol names an attribute.
        return cast(TextEngine, engine)

    return load


def short_provider(provider: str) -> str:
    """'CUDAExecutionProvider' -> 'CUDA'."""
    return provider.removesuffix("ExecutionProvider") or provider
