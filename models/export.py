"""`python -m models.export SRC OUT [--precision fp32|fp16|int8|int4] [--check]`

Turns a Hugging Face GPT-2 checkpoint folder into a Ghostpen model folder. The folder is built
beside OUT and renamed into place, so an interrupted conversion never leaves half a model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx

from app.engine.errors import GhostpenError
from app.engine.model_files import Manifest, describe_files, write_manifest
from app.engine.tokenizer import Tokenizer
from models.checkpoint import GPT2Config, load_checkpoint
from models.graph import FORMAT, KV_CACHES, PRECISIONS, build_graph, default_kv_cache
from models.kv_calibration import CALIBRATION_TEXT, calibrate_kv_scales

# A fixed, varied English text for --check (no real model is needed: it is tokens, not meaning).
CHECK_TEXT = (
    "The old lighthouse keeper climbed the stairs each evening, counting one hundred and "
    "twelve steps, and lit the lamp that warned ships away from the rocks below. In 1893 a "
    "storm broke the glass; he wrote in his log: \"No ship lost tonight.\""
)
# Weights always go to model.onnx.data beside the graph: onnxruntime maps that file instead of
# parsing the weights into a protobuf copy, which cut the peak RSS of loading a 58 MB int8 stack
# from 181 to 128 MB here (the copy is freed after prepacking, but the peak stays). Protobuf
# could not hold more than 2 GB in one file anyway.
EXTERNAL_DATA = "model.onnx.data"

Progress = Callable[[str], None]


def export_model(src: Path, out: Path, precision: str = "fp32", check: bool = False,
                 progress: Progress = print, kv_cache: str | None = None,
                 on_layer: Callable[[int, int], None] | None = None,
                 checkpoint: tuple[GPT2Config, dict[str, np.ndarray]] | None = None) -> Manifest:
    """Convert the checkpoint in `src` into a model folder `out` (replaced whole, or left as it
    was on failure). `progress` gets a line per stage, `on_layer(done, total)` a call per
    converted block; either may raise to cancel. `checkpoint`: what load_checkpoint(src) gave a
    caller that already read it (an ONNX export takes seconds to parse)."""
    if precision not in PRECISIONS:
        raise GhostpenError(f"precision {precision!r} is unknown; choose one of "
                            f"{', '.join(PRECISIONS)}.")
    started = time.perf_counter()
    progress(f"reading {src}")
    config, weights = checkpoint or load_checkpoint(src)
    tokenizer = Tokenizer.from_dir(src)
    kv_cache = kv_cache or default_kv_cache(precision)
    kv_scales = None
    if kv_cache == "int8":
        progress("measuring the key/value ranges for the int8 KV cache")
        kv_scales = calibrate_kv_scales(weights, config, tokenizer.encode(CALIBRATION_TEXT))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = _staging_dir(out)
    try:
        progress(f"building the {precision} graph ({config.n_params / 1e6:.0f}M parameters, "
                 f"{kv_cache} KV cache)")
        with open(staging / EXTERNAL_DATA, "wb") as data:
            model = build_graph(config, weights, precision, source=str(src), kv_cache=kv_cache,
                                kv_scales=kv_scales, data=data, data_location=EXTERNAL_DATA,
                                on_layer=on_layer)
        names = _write_folder(staging, model, config, tokenizer)
        del model
        manifest = Manifest(precision=precision, source=str(src), graph_format=FORMAT,
                            files=describe_files(staging, names), n_params=config.n_params,
                            kv_cache=kv_cache)
        write_manifest(staging, manifest)
        if check:
            progress("checking against the numpy reference")
            result = check_against_reference(staging, config, weights, tokenizer)
            progress(f"max |Δlogit| {result['max_abs_dlogit']:.3g}, "
                     f"top-1 agreement {result['top1_agreement']:.1%}, "
                     f"relative error {result['relative_error']:.3g}")
            manifest = dataclasses.replace(manifest, check=result)
            write_manifest(staging, manifest)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return manifest


def _staging_dir(out: Path) -> Path:
    """An empty sibling of `out` to build in, renamed to `out` when complete. Made with mkdir,
    not tempfile.mkdtemp: the finished model folder should have the permissions any new folder
    gets (the umask's), not mkdtemp's owner-only 0700."""
    while True:
        staging = out.parent / f".{out.name}.{secrets.token_hex(4)}"
        try:
            staging.mkdir()
            return staging
        except FileExistsError:
            continue


def _write_folder(folder: Path, model: onnx.ModelProto, config: GPT2Config,
                  tokenizer: Tokenizer) -> list[str]:
    """The graph (its weights are already in EXTERNAL_DATA), the tokenizer and the config."""
    names = ["model.onnx", EXTERNAL_DATA, "tokenizer.json", "config.json"]
    onnx.save_model(model, str(folder / "model.onnx"))
    tokenizer.save(folder / "tokenizer.json")
    (folder / "config.json").write_text(json.dumps(config.to_hf_json(), indent=2), "utf-8")
    return names


def check_against_reference(folder: Path, config: GPT2Config, weights: dict[str, np.ndarray],
                            tokenizer: Tokenizer) -> dict[str, float]:
    """Logits of the new model vs plain fp32 numpy GPT-2 on CHECK_TEXT, every position."""
    from app.engine.loader import load_runner
    from models.reference import gpt2_logits

    ids = tokenizer.encode(CHECK_TEXT)
    expected = gpt2_logits(weights, config, ids)
    runner = load_runner(folder, device="cpu", verify=False)
    cache = runner.new_cache()
    actual = runner.forward(np.array([ids]), cache, keep=len(ids))[0].astype(np.float32)
    diff = np.abs(actual - expected)
    return {
        "text_tokens": len(ids),
        "max_abs_dlogit": float(diff.max()),
        "top1_agreement": float((actual.argmax(-1) == expected.argmax(-1)).mean()),
        "relative_error": float(np.linalg.norm(actual - expected) / np.linalg.norm(expected)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.export", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", type=Path, help="Hugging Face GPT-2 checkpoint folder")
    parser.add_argument("out", type=Path, help="model folder to write")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--kv-cache", choices=KV_CACHES, default=None,
                        help="KV cache type (default: fp32 for fp32, fp16 for fp16, int8 for "
                             "int8/int4)")
    parser.add_argument("--check", action="store_true",
                        help="compare with a numpy reference and record the result")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        export_model(args.src, args.out, args.precision, args.check, kv_cache=args.kv_cache)
    except GhostpenError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
