"""Sampler presets: three built in, any number of the person's own, JSON in and out.

Plain data and no Qt, so it is tested without a window. Built-in presets cannot be changed,
renamed or deleted; saving under a built-in name is refused with a message that says why.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.engine.errors import GhostpenError
from app.engine.sampling_params import SamplingParams
from app.ui.documents import write_text_atomic

FORMAT = "ghostpen-presets"
VERSION = 1

BUILTIN: dict[str, SamplingParams] = {
    # Sticks to the likeliest words: summaries, factual prose, finishing a sentence.
    "Precise": SamplingParams(temperature=0.35, top_k=20, top_p=0.9, min_p=0.1,
                              repetition_penalty=1.15),
    "Balanced": SamplingParams(),
    # Takes risks: brainstorming, fiction. DRY and XTC keep it from looping or going bland.
    "Creative": SamplingParams(temperature=1.05, top_k=0, top_p=0.98, min_p=0.03,
                               repetition_penalty=1.05, dry_multiplier=0.8,
                               xtc_threshold=0.1, xtc_probability=0.3),
}


class PresetStore:
    def __init__(self, user: dict[str, Any] | None = None) -> None:
        self._user: dict[str, SamplingParams] = {}
        for name, data in (user or {}).items():
            try:
                self._user[str(name)] = SamplingParams.from_json(data)
            except GhostpenError:
                continue  # a broken stored preset is skipped, not fatal

    def names(self) -> list[str]:
        return [*BUILTIN, *sorted(self._user, key=str.casefold)]

    def is_builtin(self, name: str) -> bool:
        return name in BUILTIN

    def __contains__(self, name: str) -> bool:
        return name in BUILTIN or name in self._user

    def get(self, name: str) -> SamplingParams:
        if name in BUILTIN:
            return BUILTIN[name]
        if name in self._user:
            return self._user[name]
        raise GhostpenError(f"There is no preset called {name!r}.")

    def save(self, name: str, params: SamplingParams) -> None:
        name = _clean(name)
        if name in BUILTIN:
            raise GhostpenError(f"{name!r} is a built-in preset; save under another name.")
        self._user[name] = params

    def rename(self, old: str, new: str) -> None:
        new = _clean(new)
        if old in BUILTIN:
            raise GhostpenError(f"{old!r} is a built-in preset and keeps its name.")
        if new in self and new != old:
            raise GhostpenError(f"A preset called {new!r} already exists.")
        self._user[new] = self._user.pop(old)

    def delete(self, name: str) -> None:
        if name in BUILTIN:
            raise GhostpenError(f"{name!r} is a built-in preset and cannot be deleted.")
        self._user.pop(name, None)

    def user_json(self) -> dict[str, Any]:
        return {name: params.to_json() for name, params in self._user.items()}

    def export_file(self, names: list[str], path: Path) -> None:
        data = {"format": FORMAT, "version": VERSION,
                "presets": {name: self.get(name).to_json() for name in names}}
        write_text_atomic(Path(path), json.dumps(data, indent=2, ensure_ascii=False) + "\n")

    def import_file(self, path: Path) -> list[str]:
        """Add the presets in a file; returns their names. A clash with a built-in is renamed."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise GhostpenError(f"Cannot read presets from {path.name}: {error}.") from error
        if isinstance(data, dict) and data.get("format") == FORMAT:
            found = data.get("presets", {})
        elif isinstance(data, dict):  # a bare set of sampler values
            found = {path.stem: data}
        else:
            raise GhostpenError(f"{path.name} holds no presets.")
        if not isinstance(found, dict) or not all(isinstance(v, dict) for v in found.values()):
            raise GhostpenError(f"{path.name} is not a Ghostpen preset file.")
        parsed = {str(name): SamplingParams.from_json(values) for name, values in found.items()}
        added = []
        for name, params in parsed.items():
            name = _clean(name)
            if name in BUILTIN:
                name = f"{name} (imported)"
            self._user[name] = params
            added.append(name)
        return added


def _clean(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise GhostpenError("A preset needs a name.")
    return name
