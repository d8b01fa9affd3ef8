"""`python -m app act ACTION --model PATH FILE`: run a writing action on a file, no window.

The whole file is the selection (and the document). ACTION is a writing action's file name:
summarise, translate, ask, continue, rephrase, or one of your own in the actions folder.
Prints the answer, cut as the action says; with --json one object: the action, the answer, the
exact prompt the model read and the run's numbers. Errors are one line on stderr naming the
problem and the fix, exit status 2; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from app.command_line import ArgumentError, command_parser, run_command
from app.engine.errors import first_line
from app.engine.providers import DEVICES
from app.writing_actions import (
    ActionInput,
    WritingAction,
    finish_text,
    is_complete,
    load_actions,
    render,
)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m app act", __doc__)
    parser.add_argument("action", metavar="ACTION",
                        help="summarise, translate, ask, continue, rephrase (or your own)")
    parser.add_argument("file", type=Path, metavar="FILE", help="a UTF-8 text file")
    parser.add_argument("--model", type=Path, required=True, metavar="PATH",
                        help="model folder: a Ghostpen conversion or a GPT-2 ONNX export")
    parser.add_argument("--to", metavar="LANGUAGE", default="",
                        help="translate: the language to translate into, e.g. French")
    parser.add_argument("--question", metavar="TEXT", default="",
                        help="ask: the question to answer from the file")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="the random seed (default: a fresh one each run)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to run (default auto)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object: action, result, prompt and stats")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def find_action(key: str) -> WritingAction:
    actions = {action.key: action for action in load_actions().actions}
    action = actions.get(key.lower())
    if action is None:
        raise ArgumentError(f"unknown action {key!r}; the actions are: "
                             f"{', '.join(sorted(actions))}.")
    return action


def action_input(action: WritingAction, args: argparse.Namespace) -> ActionInput:
    """What the action runs on: the whole file, with --to and --question checked first, so
    a mistake is reported before the model loads."""
    if action.languages and not args.to:
        raise ArgumentError(f"{action.key} needs --to LANGUAGE, one of "
                             f"{', '.join(action.languages)}.")
    if args.to and action.languages and args.to not in action.languages:
        matches = [name for name in action.languages if name.lower() == args.to.lower()]
        if not matches:
            raise ArgumentError(f"{action.key} has no examples for {args.to}; give --to one "
                                 f"of {', '.join(action.languages)}.")
        args.to = matches[0]
    if action.uses("question") and not args.question.strip():
        raise ArgumentError(f"{action.key} needs --question TEXT, the question to answer.")
    try:
        text = args.file.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ArgumentError(f"cannot read {args.file} ({first_line(error)}); give a UTF-8 "
                             "text file.") from error
    if not text.strip():
        raise ArgumentError(f"{args.file} is empty; give a file with some text in it.")
    return ActionInput(selection=text, document=text, start=0, end=len(text),
                       question=args.question, language=args.to)


def act_main(argv: list[str]) -> int:
    return run_command(_act, argv)


def _act(argv: list[str]) -> int:
    from app.engine.engine import load_engine

    args = build_parser().parse_args(argv)
    action = find_action(args.action)
    given = action_input(action, args)
    params = action.params if args.seed is None else action.params.replace(seed=args.seed)
    engine = load_engine(args.model, args.device)
    if engine.info.fallback_reason:
        print(f"note: {engine.info.fallback_reason}", file=sys.stderr)
    prompt = render(action, given, engine.count_tokens, engine.info.n_ctx)
    raw = ""
    cancel = threading.Event()
    for event in engine.generate(prompt, params, cancel):
        raw += event.text
        if is_complete(action, raw):  # the rest would be cut anyway: the generator ends
            cancel.set()
    result = finish_text(action, raw)
    if args.json:
        stats = engine.last_stats
        summary: dict[str, Any] = {
            "action": action.name, "result": result, "prompt": prompt,
            "stats": {"prompt_tokens": stats.prompt_tokens, "new_tokens": stats.new_tokens,
                      "prefill_ms": round(stats.prefill_ms, 2),
                      "decode_tok_s": round(stats.decode_tok_s, 1),
                      "stop_reason": stats.stop_reason, "provider": engine.info.provider,
                      "precision": engine.info.precision},
        }
        print(json.dumps(summary, ensure_ascii=False))
    else:
        print(result)
    return 0
