"""`python -m app generate --model PATH --prompt TEXT ...`: stream a continuation to stdout.

With --json: one object per token ({"id", "text", "p"}), then a summary object. A prompt longer
than the model's context loses its start: a note on stderr says how many tokens (and the summary's
"prompt_truncated_tokens"). Errors are one line on stderr naming the problem and the fix, exit
status 2; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from pathlib import Path
from typing import Any

from app.command_line import (
    ArgumentError,
    add_draft_model_flag,
    add_engine_flags,
    command_parser,
    run_command,
)
from app.engine.sampling_params import GREEDY, SAMPLER_HELP, SAMPLER_STEPS, SamplingParams
from app.engine.text_escapes import unescape

# The plain numeric knobs, each a flag named after its SamplingParams field.
NUMERIC_FLAGS: dict[str, type] = {
    f.name: int if f.type in ("int", "int | None") else float
    for f in dataclasses.fields(SamplingParams) if f.name in SAMPLER_HELP
}
MAX_PROMPT_CHARS = 10_000_000


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("python -m app generate", __doc__)
    parser.add_argument("--model", type=Path, required=True, metavar="PATH",
                        help="model folder: a Ghostpen conversion or a GPT-2 ONNX export")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", metavar="TEXT", help="the text to continue")
    source.add_argument("--prompt-file", type=Path, metavar="PATH",
                        help="read the text to continue from this UTF-8 file")
    parser.add_argument("--greedy", action="store_true",
                        help="always the model's likeliest token: temperature 0, and the "
                             "penalties, DRY, XTC and mirostat off unless their flags are given")
    defaults = SamplingParams()
    for name, kind in NUMERIC_FLAGS.items():
        default = getattr(defaults, name)
        shown = "a fresh seed each run" if default is None else default
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            metavar="N" if kind is int else "X",
                            help=f"{SAMPLER_HELP[name]} (default {shown})")
    parser.add_argument("--stop", action="append", default=[], metavar="TEXT",
                        help="end the text where it would write TEXT (repeatable); "
                             "\\n is a line break, \\t a tab, \\\\ a backslash")
    parser.add_argument("--ban", action="append", default=[], metavar="TEXT",
                        help="never write TEXT (repeatable); \\n, \\t and \\\\ as in --stop")
    parser.add_argument("--logit-bias", action="append", default=[], metavar="ID=BIAS",
                        help="add BIAS to token ID's logit, e.g. 198=-5 (repeatable; "
                             "-inf bans the token)")
    parser.add_argument("--sampler-order", metavar="STEPS",
                        help="the order the sampler steps run in, a comma list of "
                             f"{', '.join(SAMPLER_STEPS)}; steps left out are skipped "
                             "(default: that order)")
    add_engine_flags(parser)
    add_draft_model_flag(parser)
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per token, then a summary, instead of text")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    return parser


def params_from_args(args: argparse.Namespace) -> SamplingParams:
    values: dict[str, Any] = {n: getattr(args, n) for n in NUMERIC_FLAGS
                              if getattr(args, n) is not None}
    if args.greedy and values.get("temperature", 0.0) != 0.0:
        raise ArgumentError("--greedy always takes the likeliest token; give either --greedy "
                             "or --temperature.")
    if args.stop:
        values["stop_strings"] = tuple(unescape(s) for s in args.stop)
    if args.ban:
        values["banned_strings"] = tuple(unescape(s) for s in args.ban)
    if args.sampler_order:
        values["sampler_order"] = tuple(s.strip() for s in args.sampler_order.split(","))
    bias = {}
    for item in args.logit_bias:
        token, _, value = item.partition("=")
        try:
            bias[int(token)] = float(value)
        except ValueError:
            raise ArgumentError(f"--logit-bias {item!r} must look like 198=-5") from None
    if bias:
        values["logit_bias"] = bias
    # Greedy starts from every penalty off, so that it is the model's argmax; a penalty flag
    # given beside --greedy still applies.
    return (GREEDY if args.greedy else SamplingParams()).replace(**values)


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt_file is not None:
        try:
            prompt = args.prompt_file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ArgumentError(f"cannot read {args.prompt_file} ({error.__class__.__name__}); "
                                 "give a UTF-8 text file.") from error
    else:
        prompt = args.prompt
    if not prompt:
        raise ArgumentError("the prompt is empty; give the text to continue with --prompt.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ArgumentError(f"the prompt is {len(prompt):,} characters; give at most "
                             f"{MAX_PROMPT_CHARS:,} (only the last 1024 tokens are read).")
    return prompt


def generate_main(argv: list[str]) -> int:
    return run_command(_generate, argv)


def _generate(argv: list[str]) -> int:
    from app.engine.engine import load_engine

    args = build_parser().parse_args(argv)
    params = params_from_args(args)
    prompt = read_prompt(args)
    engine = load_engine(args.model, args.device, args.threads, args.draft_model)
    if engine.info.fallback_reason:
        print(f"note: {engine.info.fallback_reason}", file=sys.stderr)
    prompt_tokens = engine.count_tokens(prompt)
    dropped: int | None = None  # prompt tokens left out of the context, known once it is read
    out = sys.stdout
    cancel = threading.Event()
    for event in engine.generate(prompt, params, cancel):
        if dropped is None:
            dropped = _note_dropped(prompt_tokens, engine.last_stats.prompt_tokens,
                                    engine.info.n_ctx)
        if args.json:
            out.write(json.dumps({"id": event.token_id, "text": event.text,
                                  "p": round(event.p, 6)}, ensure_ascii=False) + "\n")
        else:
            out.write(event.text)
        out.flush()
    stats = engine.last_stats
    if dropped is None:
        dropped = _note_dropped(prompt_tokens, stats.prompt_tokens, engine.info.n_ctx)
    if args.json:
        out.write(json.dumps({
            "prompt_tokens": stats.prompt_tokens, "prompt_truncated_tokens": dropped,
            "new_tokens": stats.new_tokens, "prefill_ms": round(stats.prefill_ms, 2),
            "decode_tok_s": round(stats.decode_tok_s, 1), "provider": engine.info.provider,
            "precision": engine.info.precision, "stop_reason": stats.stop_reason,
            "draft_tokens": stats.draft_tokens,
            "accepted_draft_tokens": stats.accepted_draft_tokens,
        }) + "\n")
    else:
        out.write("\n")
    out.flush()
    return 0


def _note_dropped(prompt_tokens: int, kept_tokens: int, n_ctx: int) -> int:
    """Say on stderr when the start of the prompt did not fit the context; the tokens dropped.

    Read when the first token comes: the engine keeps the prompt's tail that leaves room for
    the new tokens, and only later, when the context fills, slides it further.
    """
    dropped = max(0, prompt_tokens - kept_tokens)
    if dropped:
        print(f"note: the prompt is {prompt_tokens:,} tokens; its first {dropped:,} were left "
              f"out to fit the model's {n_ctx:,}-token context (it reads the last "
              f"{kept_tokens:,}).", file=sys.stderr)
    return dropped
