"""`python -m app generate`: what a script reading its stdout relies on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from app.engine.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", "generate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_json_lines_then_a_summary(tiny_model: Path) -> None:
    result = generate("--model", str(tiny_model), "--prompt", "The lighthouse", "--greedy",
                      "--max-new-tokens", "6", "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    tokens, summary = lines[:-1], lines[-1]
    assert len(tokens) == 6
    assert all(set(t) == {"id", "text", "p"} and 0 < t["p"] <= 1 for t in tokens)
    assert summary["prompt_tokens"] == len(Tokenizer.gpt2().encode("The lighthouse"))
    assert summary["new_tokens"] == 6
    assert summary["provider"] == "CPUExecutionProvider" and summary["precision"] == "fp32"
    assert summary["prefill_ms"] > 0 and summary["decode_tok_s"] > 0


def test_plain_text_streams_the_same_continuation(tiny_model: Path) -> None:
    as_json = generate("--model", str(tiny_model), "--prompt", "Once", "--greedy",
                       "--max-new-tokens", "5", "--json")
    as_text = generate("--model", str(tiny_model), "--prompt", "Once", "--greedy",
                       "--max-new-tokens", "5")
    pieces = "".join(json.loads(line)["text"] for line in as_json.stdout.splitlines()[:-1])
    assert as_text.stdout == pieces + "\n"


def test_seeded_sampling_flags_replay(tiny_model: Path) -> None:
    args = ("--model", str(tiny_model), "--prompt", "Once", "--temperature", "1.2",
            "--top-k", "20", "--seed", "9", "--max-new-tokens", "12")
    first, again = generate(*args), generate(*args)
    assert first.returncode == 0 and first.stdout == again.stdout
    other = generate(*args[:-4], "--seed", "10", "--max-new-tokens", "12")
    assert other.stdout != first.stdout
