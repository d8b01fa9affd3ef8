"""`python -m app act`: a writing action run on a file, without the window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.__main__ import main
from app.writing_actions import builtin_actions_dir

ROOT = Path(__file__).resolve().parents[2]
STORY = "The lighthouse keeper rowed out at dawn. The sea was calm and grey."


@pytest.fixture(autouse=True)
def own_folders(isolated_dirs: Path) -> Path:
    """No writing actions of the person's own: the built-in ones are what these tests read."""
    return isolated_dirs


@pytest.fixture(scope="module")
def model(tiny_model_copy: Path) -> Path:
    return tiny_model_copy


@pytest.fixture
def story(tmp_path: Path) -> Path:
    path = tmp_path / "story.txt"
    path.write_text(STORY, encoding="utf-8")
    return path


def act(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["act", *args])
    out, err = capsys.readouterr()
    return status, out, err


def act_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    status, out, err = act(capsys, *args, "--json")
    assert status == 0, err
    lines = out.splitlines()
    assert len(lines) == 1
    return json.loads(lines[0])


def test_summarise_reads_the_papers_tldr_prompt(capsys: pytest.CaptureFixture[str],
                                                 model: Path, story: Path) -> None:
    answer = act_json(capsys, "summarise", "--model", str(model), str(story))
    assert answer["prompt"] == STORY + "\nTL;DR:"
    assert answer["action"] == "Summarise"
    assert isinstance(answer["result"], str)
    stats = answer["stats"]
    assert isinstance(stats, dict)
    assert stats["new_tokens"] > 0 and stats["prompt_tokens"] > 0
    assert stats["provider"] == "CPUExecutionProvider"


def test_translate_to_french_reads_sentence_pairs(capsys: pytest.CaptureFixture[str],
                                                  model: Path, story: Path) -> None:
    translate = json.loads((builtin_actions_dir() / "translate.json").read_text("utf-8"))
    pairs = translate["languages"]["French"]
    answer = act_json(capsys, "translate", "--to", "French", "--model", str(model),
                      str(story))
    assert answer["prompt"] == "\n".join(pairs) + "\n" + STORY + " ="
    assert answer["action"] == "Translate"


def test_ask_reads_the_question_after_the_text(capsys: pytest.CaptureFixture[str],
                                               model: Path, story: Path) -> None:
    answer = act_json(capsys, "ask", "--question", "Who rowed out?", "--model",
                      str(model), str(story))
    assert answer["prompt"] == STORY + "\nQ: Who rowed out?\nA:"
    assert "\n" not in str(answer["result"])  # Ask keeps the answer's first line


def test_the_same_seed_gives_the_same_summary(capsys: pytest.CaptureFixture[str],
                                              model: Path, story: Path) -> None:
    args = ("summarise", "--seed", "5", "--model", str(model), str(story))
    assert act(capsys, *args)[1] == act(capsys, *args)[1]


@pytest.mark.parametrize(("args", "says"), [
    (("ask",), "ask needs --question TEXT"),
    (("translate",), "translate needs --to LANGUAGE, one of French"),
    (("translate", "--to", "Klingon"), "no examples for Klingon"),
    (("shorten",), "unknown action 'shorten'; the actions are: ask, continue, rephrase, "
                   "summarise, translate."),
])
def test_a_mistake_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str], story: Path,
                                            args: tuple[str, ...], says: str) -> None:
    # No model is needed to find these: they are reported before one would load.
    status, out, err = act(capsys, *args, "--model", "no-such-model", str(story))
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and says in err, err


def test_a_missing_or_empty_file_is_one_line_and_status_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status, _, err = act(capsys, "summarise", "--model", "m", str(tmp_path / "gone.txt"))
    assert status == 2 and err.startswith("error: cannot read ") and err.count("\n") == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n", encoding="utf-8")
    status, _, err = act(capsys, "summarise", "--model", "m", str(empty))
    assert status == 2 and "is empty" in err and err.count("\n") == 1


def test_act_runs_end_to_end_as_a_command(model: Path, story: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app", "act", "continue", "--model", str(model),
         "--seed", "1", str(story)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.endswith("\n") and len(result.stdout) > 1
