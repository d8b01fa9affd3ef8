"""Writing actions: GPT-2's zero-shot uses (summarise, translate, answer, continue, rephrase) as
prompt templates that are plain JSON, loaded, checked and filled in here, without Qt.

One file is one action. Built-in ones ship in resources/actions; a person's own sit in the
config folder's actions/ and replace a built-in one of the same file name. A file:

    {
      "name": "Summarise",
      "description": "A short summary of the selection (GPT-2's TL;DR: prompt).",
      "template": ["{selection}", "TL;DR:"],       a string, or lines joined with newlines
      "sampling": {"temperature": 1.0, "top_k": 2}, over the model's plain argmax (GREEDY)
      "stop": ["\\n\\n"],                            text that ends the answer (not kept)
      "keep_sentences": 3,                           keep the first N sentences (0: all)
      "first_line": false,                           keep the first line only
      "trim": true,                                  strip the spaces around the answer
      "languages": {"French": ["a = b", ...]}        for {language} and {examples}
    }

Placeholders: {selection} (the selected text, or the paragraph at the cursor), {document} (as
much of the document as fits in the model's context, centred on the selection), {question},
{language} (the chosen language's name) and {examples} (that language's example lines).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.engine.errors import GhostpenError, first_line
from app.engine.sampling_params import GREEDY, SamplingParams
from app.engine.tokenizer import RESOURCES_DIR
from app.paths import config_dir

PLACEHOLDERS = ("selection", "document", "question", "language", "examples")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
# A sentence ends at . ! or ? (and any closing quotes or brackets) followed by white space.
_SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s)")
_KEYS = ("name", "description", "template", "sampling", "stop", "keep_sentences", "first_line",
         "trim", "languages")


class ActionFileError(GhostpenError):
    """An action file that cannot be used; the message names the file and the problem."""


class ActionInputError(GhostpenError):
    """An action cannot run on what it was given (no text, no question, too long)."""


@dataclass(frozen=True)
class WritingAction:
    key: str  # the file name without .json: a person's file of the same name replaces ours
    name: str
    description: str
    template: str
    params: SamplingParams  # with the stop strings
    keep_sentences: int = 0
    first_line: bool = False
    trim: bool = True
    languages: Mapping[str, str] = field(default_factory=dict)  # name -> example lines
    source: Path | None = None

    def uses(self, placeholder: str) -> bool:
        return "{" + placeholder + "}" in self.template


@dataclass(frozen=True)
class ActionInput:
    """What an action runs on. `start` and `end` are where the selection sits in `document`
    (string indices); without a selection, the paragraph at the cursor."""

    selection: str
    document: str = ""
    start: int = 0
    end: int = 0
    question: str = ""
    language: str = ""


@dataclass(frozen=True)
class LoadedActions:
    actions: list[WritingAction]  # sorted by name
    problems: list[str]  # one line per file that could not be used


# --- loading and checking ---------------------------------------------------------------------


def builtin_actions_dir() -> Path:
    return RESOURCES_DIR / "actions"


def user_actions_dir() -> Path:
    return config_dir() / "actions"


def load_actions(builtin_dir: Path | None = None, user_dir: Path | None = None) -> LoadedActions:
    """The built-in actions, then the person's own over them (same file name: theirs). A file
    that cannot be used is left out with one line naming it; the others still load."""
    by_key: dict[str, WritingAction] = {}
    problems: list[str] = []
    for folder in (builtin_dir or builtin_actions_dir(), user_dir or user_actions_dir()):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            try:
                action = load_action_file(path)
            except ActionFileError as error:
                problems.append(str(error))
                continue
            by_key[action.key] = action
    actions = sorted(by_key.values(), key=lambda a: a.name.casefold())
    return LoadedActions(actions, problems)


def load_action_file(path: Path) -> WritingAction:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ActionFileError(f"{path.name}: cannot be read ({first_line(error)}).") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ActionFileError(
            f"{path.name}: is not valid JSON ({first_line(error)}); fix it or remove it."
        ) from error
    try:
        return parse_action(path.stem, data, source=path)
    except GhostpenError as error:
        raise ActionFileError(f"{path.name}: {first_line(error)}") from error


def parse_action(key: str, data: object, source: Path | None = None) -> WritingAction:
    """Build an action from a file's JSON; raises GhostpenError naming the first problem."""
    if not isinstance(data, dict):
        raise GhostpenError("must be a JSON object with at least a name and a template.")
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise GhostpenError(f"unknown key {unknown[0]!r}; the keys are {', '.join(_KEYS)}.")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise GhostpenError('"name" is missing; give the action a name, e.g. "Summarise".')
    description = data.get("description", "")
    if not isinstance(description, str):
        raise GhostpenError('"description" must be a string.')
    template = _text(data.get("template"), "template")
    if not template.strip():
        raise GhostpenError('"template" is missing; e.g. ["{selection}", "TL;DR:"].')
    for placeholder in _PLACEHOLDER.findall(template):
        if placeholder not in PLACEHOLDERS:
            raise GhostpenError(f"the template's {{{placeholder}}} is not a placeholder; use "
                                + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ".")
    if "{selection}" not in template and "{document}" not in template:
        raise GhostpenError("the template uses neither {selection} nor {document}; add one.")
    sampling = data.get("sampling", {})
    if not isinstance(sampling, dict):
        raise GhostpenError('"sampling" must be an object of sampler settings.')
    stop = data.get("stop", [])
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop):
        raise GhostpenError('"stop" must be a list of non-empty strings, e.g. ["\\n"].')
    params = SamplingParams.from_json({**GREEDY.to_json(), **sampling, "stop_strings": stop})
    keep_sentences = data.get("keep_sentences", 0)
    if isinstance(keep_sentences, bool) or not isinstance(keep_sentences, int) \
            or keep_sentences < 0:
        raise GhostpenError('"keep_sentences" must be a whole number, 0 (keep all) or more.')
    flags = {}
    for flag, default in (("first_line", False), ("trim", True)):
        flags[flag] = data.get(flag, default)
        if not isinstance(flags[flag], bool):
            raise GhostpenError(f'"{flag}" must be true or false.')
    languages = _languages(data.get("languages", {}))
    if ("{language}" in template or "{examples}" in template) and not languages:
        raise GhostpenError('the template uses {language} or {examples}: add "languages", '
                            'e.g. {"French": ["The cat. = Le chat."]}.')
    return WritingAction(key=key, name=name.strip(), description=description.strip(),
                         template=template, params=params, keep_sentences=keep_sentences,
                         first_line=flags["first_line"], trim=flags["trim"],
                         languages=languages, source=source)


def _text(value: object, name: str) -> str:
    """A string, or a list of lines joined with newlines (easier to read in a JSON file)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(line, str) for line in value):
        return "\n".join(value)
    if value is None:
        return ""
    raise GhostpenError(f'"{name}" must be a string or a list of lines.')


def _languages(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise GhostpenError('"languages" must map a language to its example lines.')
    languages: dict[str, str] = {}
    for language, examples in value.items():
        if not language.strip():
            raise GhostpenError('"languages" has an empty language name.')
        languages[language.strip()] = _text(examples, f"languages.{language}")
    return languages


# --- filling in -------------------------------------------------------------------------------


def fill(template: str, values: Mapping[str, str]) -> str:
    """Put `values` in for the placeholders, in one pass: text put in is not read again, so a
    selection that holds "{question}" stays as it is."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render(action: WritingAction, given: ActionInput, count_tokens: Callable[[str], int],
           n_ctx: int) -> str:
    """The prompt for `action` on `given`, leaving room in the context for the answer.
    Raises ActionInputError with what to do when something it needs is missing or too long."""
    if action.uses("selection") and not given.selection.strip():
        raise ActionInputError("Select some text first, or put the cursor in a paragraph.")
    if action.uses("question") and not given.question.strip():
        raise ActionInputError(f"Type a question for {action.name} first.")
    language = given.language or next(iter(action.languages), "")
    if action.languages and language not in action.languages:
        raise ActionInputError(f"{action.name} has no examples for {language}; choose one of "
                               f"{', '.join(action.languages)}.")
    values = {"selection": given.selection, "question": given.question.strip(),
              "language": language, "examples": action.languages.get(language, "")}
    room = n_ctx - action.params.max_new_tokens

    def fits(document: str) -> bool:
        return count_tokens(fill(action.template, {**values, "document": document})) <= room

    if action.uses("document"):
        values["document"] = fit_document(given.document, given.start, given.end, fits)
    prompt = fill(action.template, values)
    n_tokens = count_tokens(prompt)
    if n_tokens > room:
        raise ActionInputError(
            f"The text is too long for {action.name}: {n_tokens} tokens, and the model reads "
            f"{room} at most with room for the answer; select less.")
    return prompt


def fit_document(document: str, start: int, end: int, fits: Callable[[str], bool]) -> str:
    """As much of `document` as `fits`, around [start, end): the part farthest from the
    selection goes first, and a word cut at either edge is dropped."""
    if fits(document):
        return document
    centre = (start + end) // 2

    def window(length: int) -> tuple[int, int]:
        left = min(max(0, centre - length // 2), len(document) - length)
        return left, left + length

    low, high = 0, len(document)  # fits(window(low)) holds, fits(window(high)) does not
    while high - low > 1:
        middle = (low + high) // 2
        left, right = window(middle)
        if fits(document[left:right]):
            low = middle
        else:
            high = middle
    left, right = window(low)
    text = document[left:right]
    if left > 0 and not document[left - 1].isspace():  # starts inside a word
        text = re.sub(r"^\S*\s*", "", text)
    if right < len(document) and not document[right].isspace():  # ends inside a word
        text = re.sub(r"\s*\S*$", "", text)
    return text


def paragraph_at(text: str, position: int) -> tuple[int, int]:
    """[start, end) of the paragraph at `position`: the lines around it up to blank lines,
    without the line break that ends it. An empty range on a blank line."""
    lines_start = [0]
    for index, char in enumerate(text):
        if char == "\n":
            lines_start.append(index + 1)
    line = max(i for i, s in enumerate(lines_start) if s <= position)

    def bounds(i: int) -> tuple[int, int]:
        stop = lines_start[i + 1] - 1 if i + 1 < len(lines_start) else len(text)
        return lines_start[i], stop

    def blank(i: int) -> bool:
        s, e = bounds(i)
        return not text[s:e].strip()

    if blank(line):
        return position, position
    first = line
    while first > 0 and not blank(first - 1):
        first -= 1
    last = line
    while last + 1 < len(lines_start) and not blank(last + 1):
        last += 1
    return bounds(first)[0], bounds(last)[1]


# --- the answer -------------------------------------------------------------------------------


def is_complete(action: WritingAction, raw: str) -> bool:
    """The answer so far already holds everything `finish_text` keeps: the run can stop."""
    text = raw.lstrip() if action.trim else raw
    if action.first_line and "\n" in text:
        return True
    return 0 < action.keep_sentences <= len(_SENTENCE_END.findall(text))


def finish_text(action: WritingAction, raw: str) -> str:
    """What the model wrote, cut as the action says: its first line, its first sentences."""
    text = raw.lstrip() if action.trim else raw
    if action.first_line:
        text = text.split("\n", 1)[0]
    if action.keep_sentences:
        ends = list(_SENTENCE_END.finditer(text))
        if len(ends) >= action.keep_sentences:
            text = text[: ends[action.keep_sentences - 1].end()]
    return text.strip() if action.trim else text

