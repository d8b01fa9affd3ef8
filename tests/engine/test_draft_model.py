"""A draft model guesses the next tokens; the model checks them in one pass and keeps only what
it would have written itself."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from app.engine.engine import load_engine
from app.engine.errors import GhostpenError
from app.engine.model_files import MANIFEST, describe_files
from app.engine.sampling_params import GREEDY, SamplingParams

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ("The lighthouse keeper climbed the stairs", "Once upon a time, in a small town,",
           "Rain fell on the harbour all night.")


@pytest.fixture(scope="module")
def draft(model_cache: Callable[..., Path]) -> Path:
    """The tiny model in int8: the same weights, rounded, so its guesses are mostly right."""
    return model_cache("tiny", "int8")


def written(engine_dir: Path, draft_dir: Path | None, params: SamplingParams,
            prompt: str) -> tuple[list[int], int, int]:
    engine = load_engine(engine_dir, device="cpu", draft_dir=draft_dir)
    engine.generator.lookup = False  # only the draft model guesses
    engine.generator.always_draft = True  # every guess checked: the text must not change
    tokens = [event.token_id for event in engine.generate(prompt, params)]
    cache = engine.generator.cache
    assert cache.pos == len(cache.tokens)  # no unchecked guess outlives the run
    return tokens, engine.last_stats.draft_tokens, engine.last_stats.accepted_draft_tokens


def test_with_a_draft_model_the_text_is_the_models_own(tiny_model: Path, draft: Path) -> None:
    guessed_right = 0
    for number, prompt in enumerate(PROMPTS):
        for params in (dataclasses.replace(GREEDY, max_new_tokens=80),
                       SamplingParams(seed=number, max_new_tokens=80)):
            alone, _, _ = written(tiny_model, None, params, prompt)
            helped, _, right = written(tiny_model, draft, params, prompt)
            assert helped == alone
            guessed_right += right
    assert guessed_right > 50  # the draft's guesses were used, not only made


def _with_other_vocabulary(model: Path, out: Path) -> Path:
    """A copy of `model` whose tokenizer gives "," and "." each other's ids."""
    shutil.copytree(model, out)
    tokenizer = json.loads((out / "tokenizer.json").read_text("utf-8"))
    vocab = tokenizer["model"]["vocab"]
    vocab[","], vocab["."] = vocab["."], vocab[","]
    (out / "tokenizer.json").write_text(json.dumps(tokenizer), "utf-8")
    manifest = json.loads((out / MANIFEST).read_text("utf-8"))  # as a converter would write it
    manifest["files"].update(describe_files(out, ["tokenizer.json"]))
    (out / MANIFEST).write_text(json.dumps(manifest), "utf-8")
    return out


def test_a_draft_model_must_share_the_vocabulary(tiny_model: Path, draft: Path,
                                                 tmp_path: Path) -> None:
    other = _with_other_vocabulary(draft, tmp_path / "other-vocabulary")
    with pytest.raises(GhostpenError, match="another vocabulary"):
        load_engine(tiny_model, device="cpu", draft_dir=other)
    with pytest.raises(GhostpenError, match="the model itself"):
        load_engine(tiny_model, device="cpu", draft_dir=tiny_model)


def test_generate_takes_a_draft_model_and_says_what_it_saved(tiny_model: Path, draft: Path,
                                                             tmp_path: Path) -> None:
    command = [sys.executable, "-m", "app", "generate", "--model", str(tiny_model),
               "--prompt", PROMPTS[0], "--greedy", "--max-new-tokens", "40", "--json"]
    alone = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    helped = subprocess.run([*command, "--draft-model", str(draft)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert alone.returncode == helped.returncode == 0, helped.stderr
    assert helped.stdout.splitlines()[:-1] == alone.stdout.splitlines()[:-1]
    assert json.loads(helped.stdout.splitlines()[-1])["draft_tokens"] > 0

    other = _with_other_vocabulary(draft, tmp_path / "other-vocabulary")
    refused = subprocess.run([*command, "--draft-model", str(other)], capture_output=True,
                             text=True, cwd=ROOT, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "another vocabulary" in refused.stderr
