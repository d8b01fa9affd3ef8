"""Writing actions as files: the built-in ones, a person's own, bad files, filling in, the
answer's clean-up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.writing_actions import (
    ActionInput,
    ActionInputError,
    WritingAction,
    builtin_actions_dir,
    finish_text,
    fit_document,
    is_complete,
    load_actions,
    paragraph_at,
    parse_action,
    render,
)


def chars(text: str) -> int:
    """A token counter for tests: one token per character."""
    return len(text)


def builtin() -> dict[str, WritingAction]:
    loaded = load_actions(builtin_actions_dir(), Path("/nonexistent"))
    assert loaded.problems == []
    return {a.key: a for a in loaded.actions}


def write(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_the_built_in_actions_follow_the_gpt2_papers_formats() -> None:
    actions = builtin()
    assert [a.name for a in sorted(actions.values(), key=lambda a: a.name)] == [
        "Ask", "Continue", "Rephrase", "Summarise", "Translate"]

    summarise = actions["summarise"]
    assert render(summarise, ActionInput("A passage."), chars, 1024) == "A passage.\nTL;DR:"
    assert (summarise.params.top_k, summarise.params.temperature) == (2, 1.0)
    assert summarise.keep_sentences == 3

    translate = actions["translate"]
    assert {"French", "German", "Spanish"} <= set(translate.languages)
    prompt = render(translate, ActionInput("Good morning.", language="German"), chars, 1024)
    lines = prompt.split("\n")
    assert lines[-1] == "Good morning. ="
    assert all(" = " in line for line in lines[:-1]) and len(lines) >= 3
    assert "Das Wetter ist heute herrlich." in prompt and "Il fait" not in prompt
    assert translate.params.greedy and translate.params.stop_strings == ("\n",)

    ask = actions["ask"]
    given = ActionInput("", document="Mary has a red bicycle.", question="What colour? ")
    assert render(ask, given, chars, 1024) == "Mary has a red bicycle.\nQ: What colour?\nA:"
    assert ask.params.greedy and ask.first_line

    rephrase = actions["rephrase"]
    prompt = render(rephrase, ActionInput("It rained."), chars, 1024)
    assert prompt.count("Original:") == prompt.count("Rephrased:") >= 3
    assert prompt.endswith("Original: It rained.\nRephrased:")

    assert render(actions["continue"], ActionInput("Once"), chars, 1024) == "Once"
    assert not actions["continue"].trim  # the answer's leading space joins it to the text


def test_a_persons_own_actions_load_beside_and_over_the_built_in_ones(tmp_path: Path) -> None:
    user = tmp_path / "actions"
    write(user, "summarise.json", {"name": "Summarise", "template": "{selection}\nIn short:"})
    write(user, "headline.json", {
        "name": "Headline", "description": "A title for the selection.",
        "template": ["{selection}", "", "Headline:"], "sampling": {"temperature": 0.5},
        "stop": ["\n"], "first_line": True})
    loaded = load_actions(builtin_actions_dir(), user)
    assert loaded.problems == []
    by_key = {a.key: a for a in loaded.actions}
    assert render(by_key["summarise"], ActionInput("Text."), chars, 1024) == "Text.\nIn short:"
    headline = by_key["headline"]
    assert headline.template == "{selection}\n\nHeadline:"
    assert headline.params.temperature == 0.5 and headline.params.stop_strings == ("\n",)
    assert headline.params.top_k == 0  # everything not set is the model's plain argmax
    assert len(loaded.actions) == 6


@pytest.mark.parametrize("content, problem", [
    ("{not json", "bad.json: is not valid JSON"),
    ({"name": "X"}, 'bad.json: "template" is missing'),
    ({"template": "{selection}"}, 'bad.json: "name" is missing'),
    ({"name": "X", "template": "{selection} {tone}"},
     "bad.json: the template's {tone} is not a placeholder"),
    ({"name": "X", "template": "Say hello."}, "bad.json: the template uses neither"),
    ({"name": "X", "template": "{selection}", "sampling": {"temperature": -1}},
     "bad.json: temperature = -1 must be 0 or more."),
    ({"name": "X", "template": "{selection}", "sampling": {"top_k": "many"}},
     'bad.json: top_k = "many" must be a whole number.'),
    ({"name": "X", "template": "{selection}", "stop": "\n"},
     'bad.json: "stop" must be a list'),
    ({"name": "X", "template": "{selection}", "temprature": 1},
     "bad.json: unknown key 'temprature'"),
    ({"name": "X", "template": "{examples}{selection} ="},
     'bad.json: the template uses {language} or {examples}: add "languages"'),
    (["a", "list"], "bad.json: must be a JSON object"),
])
def test_a_bad_file_is_one_line_naming_it_and_the_others_still_load(
        tmp_path: Path, content: object, problem: str) -> None:
    user = tmp_path / "actions"
    write(user, "bad.json", content)
    write(user, "good.json", {"name": "Good", "template": "{selection}"})
    loaded = load_actions(builtin_actions_dir(), user)
    assert len(loaded.problems) == 1
    assert loaded.problems[0].startswith(problem), loaded.problems[0]
    assert "\n" not in loaded.problems[0]
    assert "good" in {a.key for a in loaded.actions} and "summarise" in {
        a.key for a in loaded.actions}


def test_placeholders_are_filled_in_once() -> None:
    action = parse_action("x", {"name": "X", "template": "{selection}\nQ: {question}\nA:"})
    given = ActionInput("Braces {question} and {document} stay.", question="Why?")
    assert render(action, given, chars, 1024) == (
        "Braces {question} and {document} stay.\nQ: Why?\nA:")


def test_what_an_action_needs_is_asked_for_in_one_line() -> None:
    actions = builtin()
    with pytest.raises(ActionInputError, match="Select some text first"):
        render(actions["summarise"], ActionInput("   "), chars, 1024)
    with pytest.raises(ActionInputError, match="Type a question for Ask"):
        render(actions["ask"], ActionInput("", document="Text."), chars, 1024)
    with pytest.raises(ActionInputError, match="has no examples for Klingon"):
        render(actions["translate"], ActionInput("Hi.", language="Klingon"), chars, 1024)
    with pytest.raises(ActionInputError, match=r"too long for Summarise.*select less"):
        render(actions["summarise"], ActionInput("word " * 300), chars, 1024)


def test_ask_keeps_the_part_of_a_long_document_around_the_selection() -> None:
    ask = builtin()["ask"]
    words = [f"w{i}" for i in range(2000)]
    document = " ".join(words)
    start = document.index("w1500 ")
    given = ActionInput("w1500", document=document, start=start, end=start + 5,
                        question="Which word?")
    n_ctx = 400
    prompt = render(ask, given, chars, n_ctx)
    assert len(prompt) <= n_ctx - ask.params.max_new_tokens
    assert len(prompt) > n_ctx - ask.params.max_new_tokens - 10  # it uses the room it has
    body, question = prompt.rsplit("\nQ: ", 1)
    assert question == "Which word?\nA:"
    kept = body.split(" ")
    assert "w1500" in kept
    assert all(word in words for word in kept)  # no word cut in half at either edge
    assert kept == words[words.index(kept[0]): words.index(kept[0]) + len(kept)]


def test_fit_document_keeps_a_short_document_whole_and_shifts_at_its_ends() -> None:
    document = "alpha beta gamma delta epsilon"
    assert fit_document(document, 0, 5, lambda text: True) == document
    assert fit_document(document, 0, 5, lambda text: len(text) <= 12) == "alpha beta"
    assert fit_document(document, 25, 30, lambda text: len(text) <= 14) == "delta epsilon"


@pytest.mark.parametrize("position, paragraph", [
    (0, "One line.\nStill one."), (12, "One line.\nStill one."), (21, ""),
    (23, "Two."), (len("One line.\nStill one.\n\nTwo."), "Two."),
])
def test_the_paragraph_at_the_cursor_runs_between_blank_lines(position: int,
                                                              paragraph: str) -> None:
    text = "One line.\nStill one.\n\nTwo."
    start, end = paragraph_at(text, position)
    assert text[start:end] == paragraph


def test_the_answer_keeps_what_the_action_says() -> None:
    actions = builtin()
    summarise = actions["summarise"]
    raw = " First. Second one! Third? Fourth."
    assert finish_text(summarise, raw) == "First. Second one! Third?"
    assert is_complete(summarise, raw)
    assert not is_complete(summarise, " First. Second one! Third")
    assert finish_text(summarise, " Only 3.5 percent") == "Only 3.5 percent"
    ask = actions["ask"]
    assert finish_text(ask, " Red.\nQ: next") == "Red."
    assert is_complete(ask, " Red.\n") and not is_complete(ask, "\n")  # a first blank line
    assert finish_text(actions["continue"], " and then") == " and then"
