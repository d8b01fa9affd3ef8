"""`python -m app generate --model PATH --prompt TEXT ...`: stream a continuation to stdout.

With --json: one object per token ({"id", "text", "p"}), then a summary object. Errors are one
line on stderr naming the problem and the fix, exit status 2; --debug shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from app.engine.errors import GhostpenError
from app.engine.providers import DEVICES
from app.engine.sampling_params import SAMPLER_STEPS, SamplingParams

# flag -> SamplingParams field, for the plain numeric knobs.
NUMERIC_FLAGS: dict[str, type] = {
    "temperature": float, "top_k": int, "top_p": float, "min_p": float, "typical_p": float,
    "repetition_penalty": float, "repetition_penalty_range": int, "presence_penalty": float,
    "frequency_penalty": float, "no_repeat_ngram_size": int, "dry_multiplier": float,
    "dry_base": float, "dry_allowed_length": int, "dry_penalty_last_n": int,
    "xtc_threshold": float, "xtc_probability": float, "mirostat": int, "mirostat_tau": float,
    "mirostat_eta": float, "max_new_tokens": int, "seed": int,
}
MAX_PROMPT_CHARS = 10_000_000


class _ArgumentError(GhostpenError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and status 2, like every other error
        raise _ArgumentError(f"{message} (see `python -m app generate --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m app generate", description=__doc__,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--prompt", help="text to continue")
    source.add_argument("--prompt-file", type=Path, help="read the prompt from a file")
    parser.add_argument("--greedy", action="store_true", help="always the most likely token")
    defaults = SamplingParams()
    for name, kind in NUMERIC_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, default=None,
                            help=f"default {getattr(defaults, name)}")
    parser.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    parser.add_argument("--ban", action="append", default=[], help="banned string (repeatable)")
    parser.add_argument("--logit-bias", action="append", default=[], metavar="ID=BIAS")
    parser.add_argument("--sampler-order", help=f"comma list of {','.join(SAMPLER_STEPS)}")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: cores)")
    parser.add_argument("--json", action="store_true", help="JSON lines instead of text")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def params_from_args(args: argparse.Namespace) -> SamplingParams:
    values: dict[str, Any] = {n: getattr(args, n) for n in NUMERIC_FLAGS
                              if getattr(args, n) is not None}
    if args.greedy:
        values["temperature"] = 0.0
    if args.stop:
        values["stop_strings"] = tuple(s.encode().decode("unicode_escape") for s in args.stop)
    if args.ban:
        values["banned_strings"] = tuple(args.ban)
    if args.sampler_order:
        values["sampler_order"] = tuple(s.strip() for s in args.sampler_order.split(","))
    bias = {}
    for item in args.logit_bias:
        token, _, value = item.partition("=")
        try:
            bias[int(token)] = float(value)
        except ValueError:
            raise _ArgumentError(f"--logit-bias {item!r} must look like 198=-5") from None
    if bias:
        values["logit_bias"] = bias
    return SamplingParams(**values)


def read_prompt(args: argparse.Namespace) -> str:
    if args.prompt_file is not None:
        try:
            prompt = args.prompt_file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise _ArgumentError(f"cannot read {args.prompt_file} ({error.__class__.__name__}); "
                                 "give a UTF-8 text file.") from error
    else:
        prompt = args.prompt
    if not prompt:
        raise _ArgumentError("the prompt is empty; give the text to continue with --prompt.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise _ArgumentError(f"the prompt is {len(prompt):,} characters; give at most "
                             f"{MAX_PROMPT_CHARS:,} (only the last 1024 tokens are read).")
    return prompt


def generate_main(argv: list[str]) -> int:
    debug = "--debug" in argv
    try:
        return _generate(argv)
    except GhostpenError as error:
        if debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _generate(argv: list[str]) -> int:
    from app.engine.engine import load_engine

    args = build_parser().parse_args(argv)
    params = params_from_args(args)
    prompt = read_prompt(args)
    engine = load_engine(args.model, args.device, args.threads)
    if engine.info.fallback_reason:
        print(f"note: {engine.info.fallback_reason}", file=sys.stderr)
    out = sys.stdout
    cancel = threading.Event()
    for event in engine.generate(prompt, params, cancel):
        if args.json:
            out.write(json.dumps({"id": event.token_id, "text": event.text,
                                  "p": round(event.p, 6)}, ensure_ascii=False) + "\n")
        else:
            out.write(event.text)
        out.flush()
    stats = engine.last_stats
    if args.json:
        out.write(json.dumps({
            "prompt_tokens": stats.prompt_tokens, "new_tokens": stats.new_tokens,
            "prefill_ms": round(stats.prefill_ms, 2),
            "decode_tok_s": round(stats.decode_tok_s, 1), "provider": engine.info.provider,
            "precision": engine.info.precision, "stop_reason": stats.stop_reason,
        }) + "\n")
    else:
        out.write("\n")
    return 0
