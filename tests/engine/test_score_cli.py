"""`python -m app score`: every token of a text scored as the Surprise Lens scores it, checked
against the model's own log-probabilities computed another way (one forward over the whole text
with onnxruntime; transformers on the trained stand-in)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.__main__ import main
from app.bench.common import STANDIN_DIR
from app.engine.loader import load_runner
from app.engine.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]

STORY = ("The lighthouse keeper climbed the stairs every evening, and every evening the lamp "
         "was lit before the first ship came round the point.\nNobody thanked him for it.")
REPEATED = "The sea was calm and grey."
REPEATING_STORY = f"{REPEATED} The keeper rowed out at dawn.\n{REPEATED}\n"
LOGPROB_TOLERANCE = 1e-4
# Logits this close to the token's own may order either way between two runs of the same model:
# such a tie leaves the rank free between them. onnxruntime run in one piece or in chunks agrees
# to float32 rounding; transformers and onnxruntime on the stand-in differ by up to 1.7e-5
# (measured 2026-12-02), where the median gap to the nearest other logit is 0.018.
ONNXRUNTIME_TIE = 1e-6
TRANSFORMERS_TIE = 1e-4


@pytest.fixture(autouse=True)
def own_folders(isolated_dirs: Path) -> Path:
    return isolated_dirs


@pytest.fixture(scope="module")
def model(tiny_model_copy: Path) -> Path:
    return tiny_model_copy


def write(folder: Path, text: str) -> Path:
    path = folder / "text.txt"
    path.write_text(text, encoding="utf-8")
    return path


def score(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["score", *args])
    out, err = capsys.readouterr()
    return status, out, err


def score_json(capsys: pytest.CaptureFixture[str], model: Path,
               file: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The token lines and the summary of `score --json`, each line parsed."""
    status, out, err = score(capsys, "--model", str(model), "--device", "cpu", "--json",
                             str(file))
    assert status == 0, err
    assert err == ""
    lines = [json.loads(line) for line in out.splitlines()]
    *tokens, last = lines
    return tokens, last["summary"]


def reference_logits(tokens: list[int], eos: int, forward: Any) -> np.ndarray:
    """[len(tokens), V] in float64: token 0 read after <|endoftext|>, token i after tokens
    0..i-1 (the lens's reading of a text); `forward(ids)` gives the logits after each of
    `ids` [len(ids), V] in one run."""
    first = forward([eos])[-1:]
    rest = forward(tokens[:-1]) if len(tokens) > 1 else np.zeros((0, first.shape[1]))
    return np.concatenate([first, rest]).astype(np.float64)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def assert_matches(tokens: list[dict[str, Any]], ids: list[int], logits: np.ndarray,
                   tie: float) -> None:
    """Each token line against the reference logits: the id, the log-probability within
    LOGPROB_TOLERANCE, p = exp(logprob), numpy's rank of the token's logit, the five largest
    logits as the top five; `tie`: how close two logits may be to order either way."""
    assert [t["id"] for t in tokens] == ids
    assert [t["index"] for t in tokens] == list(range(len(ids)))
    log_p = log_softmax(logits)
    for token, row, row_log_p in zip(tokens, logits, log_p, strict=True):
        expected = row_log_p[token["id"]]
        assert abs(token["logprob"] - expected) < LOGPROB_TOLERANCE, (token, expected)
        assert token["p"] == pytest.approx(math.exp(expected), rel=2 * LOGPROB_TOLERANCE)
        own = row[token["id"]]
        # 1 + the logits above the token's; (row > own - tie) counts the token itself.
        assert 1 + (row > own + tie).sum() <= token["rank"] <= (row > own - tie).sum()
        top = [alternative["id"] for alternative in token["top"]]
        largest = np.sort(row)[::-1][:5]  # the five largest logits, best first
        assert np.abs(row[top] - largest).max() <= tie  # the same five, ties aside


def assert_perplexity(tokens: list[dict[str, Any]], summary: dict[str, Any],
                      log_p: np.ndarray) -> None:
    assert summary["tokens"] == len(tokens)
    mean_nll = -sum(t["logprob"] for t in tokens) / len(tokens)
    assert summary["perplexity"] == pytest.approx(math.exp(mean_nll), rel=1e-5)
    assert math.log(summary["perplexity"]) == pytest.approx(-log_p.mean(),
                                                            abs=LOGPROB_TOLERANCE)


def test_each_token_scores_the_models_own_log_probability(
        capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    tokens, summary = score_json(capsys, model, write(tmp_path, STORY))
    tokenizer = Tokenizer.from_dir(model)
    ids = tokenizer.encode(STORY)
    runner = load_runner(model, device="cpu")

    def forward(chunk: list[int]) -> np.ndarray:  # the whole text in one run, every position
        return runner.forward(np.array([chunk]), runner.new_cache(), keep=len(chunk))[0]

    logits = reference_logits(ids, tokenizer.eos_id, forward)
    assert_matches(tokens, ids, logits, ONNXRUNTIME_TIE)
    assert "".join(t["text"] for t in tokens) == STORY
    log_p = log_softmax(logits)[np.arange(len(ids)), ids]
    assert_perplexity(tokens, summary, log_p)


def test_the_trained_standin_scores_what_transformers_computes(
        capsys: pytest.CaptureFixture[str], standin_fp32: Path, tmp_path: Path) -> None:
    import torch

    from tests.engine.hf_reference import load_hf_model

    text = (STANDIN_DIR / "val-dev.txt").read_text("utf-8")[:1500]
    tokens, summary = score_json(capsys, standin_fp32, write(tmp_path, text))
    tokenizer = Tokenizer.from_dir(STANDIN_DIR)
    ids = tokenizer.encode(text)
    hf_model = load_hf_model(STANDIN_DIR)

    def forward(chunk: list[int]) -> np.ndarray:
        with torch.no_grad():
            return hf_model(torch.tensor([chunk])).logits[0].numpy()

    logits = reference_logits(ids, tokenizer.eos_id, forward)
    assert_matches(tokens, ids, logits, TRANSFORMERS_TIE)
    log_p = log_softmax(logits)[np.arange(len(ids)), ids]
    assert_perplexity(tokens, summary, log_p)
    # Trained weights: far from the 50,257 of a uniform guess (the tiny random model's).
    assert summary["perplexity"] < 1000


def test_a_repeated_sentence_is_reported(capsys: pytest.CaptureFixture[str], model: Path,
                                         tmp_path: Path) -> None:
    _, summary = score_json(capsys, model, write(tmp_path, REPEATING_STORY))
    again = REPEATING_STORY.rindex(REPEATED)
    assert summary["repeated"] == [{"text": REPEATED, "count": 2, "first_char": 0,
                                    "repeat_chars": [again]}]
    status, out, _ = score(capsys, "--model", str(model), str(write(tmp_path, STORY)))
    assert status == 0 and out.endswith("repeated: none\n")


def test_a_repeat_joining_two_earlier_passages_reports_each(
        capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    # The lens underlines "force the use of IPv4 or IPv6" as one run; it occurred earlier
    # only in two parts.
    text = ("It is sometimes necessary to force the use of one version. Some tools choose "
            "IPv4 or IPv6 for you. To force the use of IPv4 or IPv6 addresses, name the class.")
    _, summary = score_json(capsys, model, write(tmp_path, text))
    repeat = text.rindex("force the use of")
    assert summary["repeated"] == [
        {"text": "force the use of", "count": 2, "first_char": text.index("force"),
         "repeat_chars": [repeat]},
        {"text": "IPv4 or IPv6", "count": 2, "first_char": text.index("IPv4"),
         "repeat_chars": [text.rindex("IPv4")]},
    ]


def test_the_table_shows_each_token_escaped_with_p_and_rank(
        capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    tokens, summary = score_json(capsys, model, write(tmp_path, REPEATING_STORY))
    status, out, err = score(capsys, "--model", str(model), str(tmp_path / "text.txt"))
    assert status == 0 and err == ""
    table, totals = out.split("\n\n")
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["index", "token", "p", "rank"]
    assert len(rows) == len(tokens)
    for row, token in zip(rows, tokens, strict=True):
        index, text = row.split(maxsplit=1)
        assert int(index) == token["index"]
        assert text.startswith(json.dumps(token["text"], ensure_ascii=False))  # "\n" shows
        p, rank = text[len(json.dumps(token["text"], ensure_ascii=False)):].split()[:2]
        assert float(p) == pytest.approx(token["p"], rel=1e-3)
        assert int(rank) == token["rank"]
    assert any(row.split()[1] == '"\\n"' for row in rows)
    assert totals.splitlines() == [
        f"tokens: {summary['tokens']}",
        f"perplexity: {summary['perplexity']:.4f}",
        f'repeated: "{REPEATED}" occurs 2 times, first at character 0',
    ]


def test_a_text_longer_than_the_context_is_scored_in_windows_without_a_word(
        capsys: pytest.CaptureFixture[str], model: Path, tmp_path: Path) -> None:
    tokenizer = Tokenizer.from_dir(model)
    runner = load_runner(model, device="cpu")
    n_ctx = runner.n_ctx
    text = " ".join(f"Lamp {n} was lit at dusk." for n in range(n_ctx // 4))
    ids = tokenizer.encode(text)
    assert len(ids) > n_ctx + n_ctx // 2
    tokens, summary = score_json(capsys, model, write(tmp_path, text))  # no note on stderr
    assert [t["id"] for t in tokens] == ids and summary["tokens"] == len(ids)
    # Token i past the context is read after the window that starts at a multiple of half a
    # context, with at least half a context before it.
    half = n_ctx // 2
    for index in (n_ctx - 1, n_ctx, n_ctx + half - 1, n_ctx + half, len(ids) - 1):
        start = 0 if index < n_ctx else half * ((index - n_ctx) // half + 1)
        logits = runner.forward(np.array([ids[start:index]]), runner.new_cache())[0, -1]
        expected = log_softmax(logits.astype(np.float64))[ids[index]]
        assert abs(tokens[index]["logprob"] - expected) < LOGPROB_TOLERANCE, index


@pytest.mark.parametrize(("case", "says"), [
    ("missing", "error: cannot read "),
    ("empty", "is empty; give a file with some text in it."),
    ("not a model", "holds no model.onnx; choose a Ghostpen model folder"),
    ("bad flag", "--threads"),
])
def test_bad_input_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str], model: Path,
                                            tmp_path: Path, case: str, says: str) -> None:
    text, model_arg, extra = write(tmp_path, STORY), str(model), []
    if case == "missing":
        text = tmp_path / "gone.txt"
    elif case == "empty":
        text.write_text(" \n\n", encoding="utf-8")
    elif case == "not a model":
        (tmp_path / "notes").mkdir()
        model_arg = str(tmp_path / "notes")
    else:
        extra = ["--threads", "0"]
    status, out, err = score(capsys, "--model", model_arg, *extra, str(text))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and says in err, err


def test_score_runs_as_a_command_reading_stdin(model: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "score", "--model", str(model), "--json", "-"],
        cwd=ROOT, input=REPEATING_STORY, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert "".join(line["text"] for line in lines[:-1]) == REPEATING_STORY
    assert lines[-1]["summary"]["repeated"][0]["text"] == REPEATED
    (tmp_path / "notes").mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "app", "score", "--model", str(tmp_path / "notes"), "-"],
        cwd=ROOT, input=STORY, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "holds no model.onnx" in result.stderr


def test_help_lists_the_score_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "python -m app score --model PATH FILE" in capsys.readouterr().out
