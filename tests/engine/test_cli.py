"""`python -m app generate`: what a script reading its stdout relies on."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import opens_window
from app.cli import build_parser, params_from_args
from app.engine.engine import load_engine
from app.engine.sampling_params import GREEDY
from app.engine.tokenizer import Tokenizer
from tests.engine.hf_reference import hf_greedy, load_hf_model

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
    assert summary["prompt_truncated_tokens"] == 0 and result.stderr == ""
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


def run_app(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)


def tokens_and_summary(result: subprocess.CompletedProcess[str]) -> tuple[list[dict], dict]:
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return lines[:-1], lines[-1]


def test_stop_and_ban_flags_read_escapes_and_keep_other_text_as_typed() -> None:
    args = build_parser().parse_args([
        "--model", "m", "--prompt", "p", "--stop", "é", "--stop", "\\n\\n",
        "--stop", "naïve\\tend", "--stop", "C:\\\\dir", "--ban", "café\\n",
    ])
    params = params_from_args(args)
    assert params.stop_strings == ("é", "\n\n", "naïve\tend", "C:\\dir")
    assert params.banned_strings == ("café\n",)


def test_a_non_ascii_stop_string_ends_the_text(tiny_model: Path) -> None:
    (cafe,) = Tokenizer.gpt2().encode(" café")  # forced: the model writes " café café ..."
    result = generate("--model", str(tiny_model), "--prompt", "Once", "--greedy",
                      "--logit-bias", f"{cafe}=inf", "--stop", "é c", "--max-new-tokens", "8")
    assert result.returncode == 0, result.stderr
    assert result.stdout == " caf\n"


def test_a_line_break_stop_string_written_as_backslash_n(tiny_model: Path) -> None:
    (newline,) = Tokenizer.gpt2().encode("\n")
    tokens, summary = tokens_and_summary(generate(
        "--model", str(tiny_model), "--prompt", "Once", "--greedy", "--logit-bias",
        f"{newline}=inf", "--stop", "\\n", "--max-new-tokens", "8", "--json"))
    assert "".join(t["text"] for t in tokens) == ""
    assert summary["stop_reason"] == "stop_string" and summary["new_tokens"] == 1


def test_piping_into_head_stops_quietly(tiny_model: Path) -> None:
    """`python -m app generate ... | head -c 10`: no traceback when the reader leaves."""
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "generate", "--model", str(tiny_model), "--prompt",
         "Once", "--seed", "1", "--max-new-tokens", "3000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()  # as head does: the next write finds no reader
    status = process.wait(timeout=120)
    assert process.stderr.read() == b""
    process.stderr.close()
    assert status == 141  # 128 + SIGPIPE, as `yes | head` leaves it


@pytest.mark.parametrize("threads", ["0", "-3", "two"])
def test_thread_counts_below_one_are_refused(tiny_model: Path, threads: str) -> None:
    result = generate("--model", str(tiny_model), "--prompt", "Once", "--threads", threads)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "--threads" in result.stderr and "1 or more" in result.stderr


def test_a_prompt_longer_than_the_context_says_what_was_left_out(tiny_model: Path,
                                                                tmp_path: Path) -> None:
    prompt = "word " * 5000
    total = len(Tokenizer.gpt2().encode(prompt))
    (tmp_path / "long.txt").write_text(prompt, encoding="utf-8")
    result = generate("--model", str(tiny_model), "--prompt-file", str(tmp_path / "long.txt"),
                      "--greedy", "--max-new-tokens", "3", "--json")
    _, summary = tokens_and_summary(result)
    dropped = summary["prompt_truncated_tokens"]
    assert dropped == total - summary["prompt_tokens"] and summary["prompt_tokens"] <= 1024
    assert dropped > 4000
    (note,) = result.stderr.splitlines()
    assert f"{total:,} tokens" in note and f"{dropped:,}" in note and "1,024-token" in note


def test_every_flag_says_what_it_does() -> None:
    for action in build_parser()._actions:
        words = re.sub(r"\(default [^)]*\)", "", action.help or "").split()
        assert len(words) >= 3, f"{action.option_strings}: {action.help!r}"


def test_greedy_is_the_models_argmax_as_transformers_decodes_it(
        tiny_model: Path, tiny_checkpoint: Path) -> None:
    prompt = "The lighthouse keeper"
    tokens, _ = tokens_and_summary(generate("--model", str(tiny_model), "--prompt", prompt,
                                            "--greedy", "--max-new-tokens", "72", "--json"))
    hf = load_hf_model(tiny_checkpoint)
    assert [t["id"] for t in tokens] == hf_greedy(hf, Tokenizer.gpt2().encode(prompt), 72)


def test_a_penalty_given_beside_greedy_still_applies(tiny_model: Path) -> None:
    prompt = "The lighthouse keeper"
    args = ("--model", str(tiny_model), "--prompt", prompt, "--greedy", "--max-new-tokens",
            "72", "--json")
    plain, _ = tokens_and_summary(generate(*args))
    penalised, _ = tokens_and_summary(generate(*args, "--repetition-penalty", "1.3"))
    engine = load_engine(tiny_model, device="cpu")
    expected = [e.token_id for e in engine.generate(
        prompt, GREEDY.replace(repetition_penalty=1.3, max_new_tokens=72))]
    assert [t["id"] for t in penalised] == expected
    assert expected != [t["id"] for t in plain]


def test_greedy_and_a_temperature_contradict(tiny_model: Path) -> None:
    result = generate("--model", str(tiny_model), "--prompt", "Once", "--greedy",
                      "--temperature", "0.7")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "--greedy" in line and "--temperature" in line


def test_help_lists_the_window_and_the_commands_without_loading_qt() -> None:
    code = ("import sys\n"
            "from app.__main__ import main\n"
            "status = main(['--help'])\n"
            "print(sorted(m for m in sys.modules if m.startswith('PySide6')))\n"
            "sys.exit(status)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    usage, qt_modules = result.stdout.rstrip("\n").rsplit("\n", 1)
    assert "python -m app [FILE]" in usage
    assert "python -m app generate" in usage and "python -m app bench" in usage
    assert qt_modules == "[]"


def test_a_mistyped_command_names_the_commands() -> None:
    result = run_app("generat", timeout=30)  # the window would have opened and waited
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("unknown command 'generat'; the commands are: generate, act, score, "
                             "serve, bench (or no command for the window)\n")


def test_a_document_to_open_still_opens_the_window(isolated_dirs: Path) -> None:
    notes = isolated_dirs / "notes"  # no suffix: it opens because it exists
    notes.write_text("Some notes\n", encoding="utf-8")
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    result = run_app(str(notes), "--smoke-test", env=env)
    assert result.returncode == 0, result.stderr
    assert "window shown" in result.stdout
    settings = json.loads((isolated_dirs / "config" / "settings.json").read_text("utf-8"))
    assert str(notes) in settings["recent_files"]


@pytest.mark.parametrize(("word", "window"), [
    ("draft.md", True), ("Draft.TXT", True), ("drafts/today", True), ("-platform", True),
    ("--smoke-test", True), ("generat", False), ("benchmark", False),
])
def test_which_first_words_go_to_the_window(word: str, window: bool) -> None:
    assert opens_window(word) == window
