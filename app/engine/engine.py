"""Engine: text in, token events out. Tokenizer + Generator behind the TextEngine interface."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from app.engine.draft_model import DraftModel
from app.engine.errors import GhostpenError
from app.engine.events import Candidate, EngineInfo, GenerationStats, Suggestion, TokenEvent
from app.engine.generator import Generator, ScoreProgress
from app.engine.loader import Runner, load_runner
from app.engine.model_files import MANIFEST, read_manifest
from app.engine.sampling_params import SamplingParams
from app.engine.scoring import ScoreTable
from app.engine.tokenizer import GPT2_TOKENIZER_DIR, Tokenizer


class Engine:
    """One model, ready to write. Calls are serialised: one generation at a time."""

    def __init__(self, runner: Runner, tokenizer: Tokenizer, info: EngineInfo) -> None:
        self.tokenizer = tokenizer
        self.generator = Generator(runner, tokenizer)
        self.info = info
        self._lock = threading.Lock()

    @property
    def last_stats(self) -> GenerationStats:
        return self.generator.last_stats

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text))

    def generate(self, prompt: str, params: SamplingParams,
                 cancel: threading.Event | None = None,
                 n_alternatives: int = 10) -> Iterator[TokenEvent]:
        with self._lock:
            yield from self.generator.generate(self.tokenizer.encode(prompt), params, cancel,
                                               n_alternatives)

    def suggest(self, prompt: str, params: SamplingParams, n_alternatives: int = 3,
                max_tokens: int = 8, stop_at_sentence_end: bool = False,
                cancel: threading.Event | None = None) -> list[Suggestion]:
        with self._lock:
            return self.generator.suggest(self.tokenizer.encode(prompt), params, n_alternatives,
                                          max_tokens, stop_at_sentence_end, cancel)

    def warm(self, prompt: str, room: int, cancel: threading.Event | None = None) -> int:
        with self._lock:
            return self.generator.warm(self.tokenizer.encode(prompt), room, cancel)

    def candidates(self, prompt: str, params: SamplingParams, top_n: int = 20) -> list[Candidate]:
        with self._lock:
            return self.generator.candidates(self.tokenizer.encode(prompt), params, top_n)

    def score(self, text: str, cancel: threading.Event | None = None,
              progress: ScoreProgress | None = None) -> ScoreTable:
        with self._lock:
            return self.generator.score(self.tokenizer.encode(text), cancel, progress)

    def close(self) -> None:
        self.generator.runner = None  # type: ignore[assignment]


def load_engine(model_dir: Path, device: str = "auto", threads: int | None = None,
                draft_dir: Path | None = None) -> Engine:
    """Open a model folder (ours or a foreign GPT-2 export) on the best provider; `draft_dir`:
    a smaller model with the same vocabulary to guess its next tokens (see draft_model.py)."""
    model_dir = Path(model_dir)
    runner = load_runner(model_dir, device, threads)
    tokenizer = _tokenizer_of(model_dir)
    notes: tuple[str, ...] = ()
    if (model_dir / MANIFEST).exists():
        manifest = read_manifest(model_dir)
        precision, n_params = manifest.precision, manifest.n_params
    else:
        precision, n_params = "foreign", 0
        notes = ("A foreign ONNX export: it runs, but slower than a Ghostpen conversion.",)
    draft = _load_draft(Path(draft_dir), model_dir, tokenizer, device, threads) \
        if draft_dir is not None else None
    if draft is not None:
        notes = (*notes, f"{draft.name} guesses the next tokens (a draft model).")
    info = EngineInfo(model_name=model_dir.name, precision=precision, provider=runner.provider,
                      n_ctx=runner.n_ctx, n_params=n_params,
                      fallback_reason=runner.fallback_reason, notes=notes)
    engine = Engine(runner, tokenizer, info)
    engine.generator.draft_model = draft
    return engine


def _load_draft(draft_dir: Path, model_dir: Path, tokenizer: Tokenizer, device: str,
                threads: int | None) -> DraftModel:
    """The draft model, refused unless it splits text into the same tokens as the model."""
    if draft_dir.resolve() == model_dir.resolve():
        raise GhostpenError(f"{draft_dir} is the model itself; choose a smaller model with the "
                            "same vocabulary as the draft (gpt2 for gpt2-large or gpt2-xl).")
    runner = load_runner(draft_dir, device, threads)
    theirs = _tokenizer_of(draft_dir)
    if theirs.vocab_size != tokenizer.vocab_size or \
            theirs.encode(VOCABULARY_PROBE) != tokenizer.encode(VOCABULARY_PROBE):
        raise GhostpenError(f"{draft_dir} has another vocabulary than {model_dir.name}; a draft "
                            "model must split text into the same tokens (gpt2 for gpt2-large "
                            "or gpt2-xl).")
    return DraftModel(runner, theirs, draft_dir.name)


# A text whose tokens differ between vocabularies: words, numbers, punctuation, accents.
VOCABULARY_PROBE = "Naïve façades, 1,024 tokens — and “quotes”: x=3; Ω≈ 42%!\n\tdone."


def _tokenizer_of(folder: Path) -> Tokenizer:
    return Tokenizer.shared(folder if _has_tokenizer(folder) else GPT2_TOKENIZER_DIR)


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").exists() or (folder / "vocab.json").exists()
