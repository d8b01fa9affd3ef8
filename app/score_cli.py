"""`python -m app score --model PATH FILE`: how surprising the model finds each token of a text.

FILE is a UTF-8 text file, or - to read stdin. Every token is scored as the Surprise Lens scores
it: its probability and its rank among the model's choices after the text before it (after
<|endoftext|> for the first token; a text longer than the model's context is read in windows of
it), and the model's five likeliest tokens there. Prints a table of the tokens, then the
token count, the perplexity and the passages of four or more tokens that repeat earlier text.

With --json: one object per token, {"index", "id", "text", "p", "logprob", "rank", "top"}, then
{"summary": {"tokens", "perplexity", "repeated"}}; each repeated passage is {"text", "count" (how
often it occurs in the text), "first_char" (where it first occurs), "repeat_chars" (where the
repetitions found begin)}. Character offsets count Python characters of the text, line ends
read as \\n. Errors are one line on stderr naming the problem and the fix, exit status 2;
--debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from app.command_line import ArgumentError, add_engine_flags, command_parser, run_command
from app.engine.errors import first_line
from app.engine.scoring import (
    REPEAT_MIN_TOKENS,
    TokenScore,
    is_word,
    perplexity,
    repeated_runs,
)

STDIN = "-"
# p is a float32 probability: below this it is a subnormal or 0, and its log is no longer exact.
SMALLEST_P = 1e-45
TOKEN_COLUMN = 16  # characters the table gives a token's text before it widens


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m app score", __doc__)
    parser.add_argument("file", metavar="FILE", help="a UTF-8 text file, or - for stdin")
    parser.add_argument("--model", type=Path, required=True, metavar="PATH",
                        help="model folder: a Ghostpen conversion or a GPT-2 ONNX export")
    add_engine_flags(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per token, then a summary, instead of a table")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def read_text(file: str) -> str:
    """FILE's text (stdin for -), its line ends as \\n, as Python reads a text file."""
    name = "stdin" if file == STDIN else file
    try:
        data = sys.stdin.buffer.read() if file == STDIN else Path(file).read_bytes()
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ArgumentError(f"cannot read {name} ({first_line(error)}); give a UTF-8 "
                             "text file.") from error
    if not text.strip():
        raise ArgumentError(f"{name} is empty; give a file with some text in it.")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def logprob(score: TokenScore) -> float:
    return math.log(max(score.p, SMALLEST_P))


def token_record(index: int, score: TokenScore) -> dict[str, Any]:
    """One token's line of --json output."""
    return {"index": index, "id": score.token_id, "text": score.text,
            "p": _significant(score.p), "logprob": round(logprob(score), 6), "rank": score.rank,
            "top": [{"id": a.token_id, "text": a.text, "p": _significant(a.p)}
                    for a in score.alternatives]}


def repeated_passages(scores: Sequence[TokenScore], text: str) -> list[dict[str, Any]]:
    """The passages the Surprise Lens underlines (runs of four or more tokens that appeared
    earlier), each text once, in the order they first repeat.

    The lens merges repeats that touch, so one underlined run can join two earlier passages
    ("force the use of" + "IPv4 or IPv6"): a run is cut into the longest pieces, from its start,
    that each occur earlier, and a piece shorter than the lens's four tokens is left out."""
    passages: dict[str, dict[str, Any]] = {}
    runs = repeated_runs([s.token_id for s in scores], [is_word(s.text) for s in scores])
    for run_first, run_end in runs:
        first = run_first
        while first < run_end:
            end = _longest_earlier(scores, text, first, run_end)
            if end - first >= REPEAT_MIN_TOKENS:
                start = scores[first].start
                piece = text[start : scores[end - 1].end]
                # From the first visible character, as the lens underlines it.
                passage = piece.lstrip()
                start += len(piece) - len(passage)
                if passage not in passages:
                    found = occurrences(text, passage)
                    passages[passage] = {"text": passage, "count": len(found),
                                         "first_char": found[0], "repeat_chars": []}
                passages[passage]["repeat_chars"].append(start)
            first = end
    return list(passages.values())


def _longest_earlier(scores: Sequence[TokenScore], text: str, first: int, limit: int) -> int:
    """The largest end <= limit (at least first + 1) such that tokens [first, end) occur in
    `text` before token `first`. Occurring earlier holds for every end below one where it
    holds, so a binary search finds it: a long pasted repeat costs a few finds, not one per
    token."""
    start = scores[first].start

    def earlier(end: int) -> bool:
        return text.find(text[start : scores[end - 1].end]) < start

    low, high = first + 1, limit  # earlier(low) may be false: then the piece is one token
    while low < high:
        middle = (low + high + 1) // 2
        if earlier(middle):
            low = middle
        else:
            high = middle - 1
    return low


def occurrences(text: str, passage: str) -> list[int]:
    """Where `passage` begins in `text`, overlapping occurrences included."""
    found, at = [], text.find(passage)
    while at >= 0:
        found.append(at)
        at = text.find(passage, at + 1)
    return found


def summary(scores: Sequence[TokenScore], text: str) -> dict[str, Any]:
    value = perplexity(scores)
    return {"tokens": len(scores),
            "perplexity": None if value is None else round(value, 6),
            "repeated": repeated_passages(scores, text)}


def write_json(out: TextIO, scores: Sequence[TokenScore], text: str) -> None:
    for index, score in enumerate(scores):
        out.write(json.dumps(token_record(index, score), ensure_ascii=False) + "\n")
    out.write(json.dumps({"summary": summary(scores, text)}, ensure_ascii=False) + "\n")


def write_table(out: TextIO, scores: Sequence[TokenScore], text: str) -> None:
    """The tokens as quoted JSON strings (a space, a line break and an empty piece all show),
    their probability, their rank and the model's first choice there."""
    index_width = max(5, len(str(len(scores) - 1)))
    out.write(f"{'index':>{index_width}}  {'token':<{TOKEN_COLUMN}}  {'p':>9}  {'rank':>6}  "
              "model's choice\n")
    for index, score in enumerate(scores):
        token = json.dumps(score.text, ensure_ascii=False)
        choice = json.dumps(score.alternatives[0].text, ensure_ascii=False) \
            if score.alternatives else ""
        out.write(f"{index:>{index_width}}  {token:<{TOKEN_COLUMN}}  {score.p:>9.4g}  "
                  f"{score.rank:>6}  {choice}\n")
    result = summary(scores, text)
    out.write(f"\ntokens: {result['tokens']}\n")
    out.write(f"perplexity: {result['perplexity']:.4f}\n")
    if not result["repeated"]:
        out.write("repeated: none\n")
    for passage in result["repeated"]:
        out.write(f"repeated: {json.dumps(passage['text'], ensure_ascii=False)} occurs "
                  f"{passage['count']} times, first at character {passage['first_char']}\n")


def score_main(argv: list[str]) -> int:
    return run_command(_score, argv)


def _score(argv: list[str]) -> int:
    from app.engine.engine import load_engine

    args = build_parser().parse_args(argv)
    text = read_text(args.file)  # before the model loads: a mistake here is reported at once
    engine = load_engine(args.model, args.device, args.threads)
    if engine.info.fallback_reason:
        print(f"note: {engine.info.fallback_reason}", file=sys.stderr)
    scores = engine.score(text)
    decoded = "".join(s.text for s in scores)  # the offsets count into this
    if args.json:
        write_json(sys.stdout, scores, decoded)
    else:
        write_table(sys.stdout, scores, decoded)
    return 0


def _significant(value: float) -> float:
    """Six significant digits: a probability of 3e-9 keeps its figures, where rounding to six
    decimals would make it 0."""
    return float(f"{value:.6g}")
