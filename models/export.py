"""`python -m models.export SRC OUT [--precision P] [--check] [--no-smooth] [--no-gate]`,
P one of fp32 (the default), fp16, int8 and int4.

Turns a Hugging Face GPT-2 checkpoint folder into a Ghostpen model folder. The folder is built
beside OUT and renamed into place, so an interrupted conversion never leaves half a model. OUT
may be a new name, an empty folder or a Ghostpen model folder (replaced, the old one deleted
only once the new one is in place); anything else is refused, never deleted.

int8 and int4 weights are smoothed first (models.smoothing: SmoothQuant folded into the
weights, the same function in fp32) unless --no-smooth: on a copy of the trained stand-in with
outlier LayerNorm channels, as trained GPT-2s have, it took int8 from +1.7% perplexity over
fp32 to +0.02% (measured 2026-12-02).

fp16, int8 and int4 then pass the quality gate (models.quality_gate) unless --no-gate: the new
model against fp32 on a built-in English text. One that drifts beyond its precision's limits is
thrown away and the next safer precision converted instead (int4 -> int8 -> fp32, fp16 ->
fp32), with a line saying why; the figures go into the manifest's "quality".
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx

from app.engine.errors import GhostpenError, ModelLoadError, user_message
from app.engine.loader import PROMPT_GRAPH
from app.engine.model_files import (
    MANIFEST,
    MANIFEST_FORMAT,
    Manifest,
    describe_files,
    write_manifest,
)
from app.engine.tokenizer import Tokenizer
from models.checkpoint import GPT2Config, load_checkpoint
from models.graph import (
    BLOCK_SIZES,
    DEFAULT_QUANT,
    FORMAT,
    KV_CACHES,
    PRECISIONS,
    WEIGHT_BITS,
    QuantOptions,
    build_graph,
    default_kv_cache,
    has_prompt_graph,
)
from models.kv_calibration import CALIBRATION_TEXT, calibrate_kv_scales
from models.quality_gate import (
    SAFER,
    QualityReport,
    fallback_notice,
    gate_ids,
    measure_quality,
    reference_log_probs,
)
from models.smoothing import SMOOTH_ALPHA, smooth_weights

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
# What file browsers leave in any folder they show (Finder, Explorer): not a reason to refuse
# replacing a model folder that holds them.
FOLDER_CLUTTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})

Progress = Callable[[str], None]


def export_model(src: Path, out: Path, precision: str = "fp32", check: bool = False,
                 progress: Progress = print, kv_cache: str | None = None,
                 on_layer: Callable[[int, int], None] | None = None,
                 checkpoint: tuple[GPT2Config, dict[str, np.ndarray]] | None = None,
                 quant: QuantOptions = DEFAULT_QUANT, smooth: bool = True,
                 gate: bool = True, prompt_graph: bool = False) -> Manifest:
    """Convert the checkpoint in `src` into a model folder `out`: a new one, or an empty folder
    or a Ghostpen model folder replaced whole (left as it was on failure); any other `out`, or
    one that is `src`, inside it or around it, is refused with a GhostpenError before anything
    is written. `progress` gets a line per stage, `on_layer(done, total)` a call per converted
    block; either may raise to cancel. `checkpoint`: what load_checkpoint(src) gave a caller
    that already read it (an ONNX export takes seconds to parse). `quant`: how int8 / int4
    weights are quantised (models.graph.QuantOptions; the defaults unless measuring others).
    `smooth`: fold SmoothQuant into int8 / int4 weights first (models.smoothing; recorded in
    the manifest as "smoothquant": alpha); fp32 and fp16 are never smoothed. --check compares
    with the numpy reference on the checkpoint's own weights either way. `gate`: measure an
    fp16 / int8 / int4 model against fp32 (models.quality_gate) and, when it fails, convert
    the next safer precision instead: the returned manifest names the precision made, its
    `quality` the figures and why it changed (False: the precision asked for, unmeasured, as
    benches that measure a precision on purpose want). `prompt_graph`: an int8 model also gets
    a prompt graph (prompt.onnx: int8 GEMMs for prompts, prefill of 512 tokens 1.8x as fast
    on GPT-2 124M) at the cost of a second copy of its layer weights (peak RSS 292 ->
    455 MB; gpt2-xl's folder 1.6 -> 3.1 GB), so not by default."""
    if precision not in PRECISIONS:
        raise GhostpenError(f"precision {precision!r} is unknown; choose one of "
                            f"{', '.join(PRECISIONS)}.")
    src, out = Path(src), Path(out)
    started = time.perf_counter()
    progress(f"reading {src}")
    config, weights = checkpoint or load_checkpoint(src)
    tokenizer = Tokenizer.from_dir(src)
    _check_convertible(src, config, tokenizer, precision)
    target = _writable_out(src, out)
    target.parent.mkdir(parents=True, exist_ok=True)
    asked, failed = precision, []
    reference: np.ndarray | None = None  # fp32's log-probabilities on the gate's text
    while True:  # until a precision passes the gate (fp32 always does: it is the reference)
        staging = _staging_dir(target)
        try:
            manifest = _convert(staging, src, config, weights, tokenizer, precision, progress,
                                kv_cache, on_layer, quant, smooth, prompt_graph)
            report = None
            if gate and precision in SAFER:
                progress(f"measuring {precision} against fp32 on the built-in text")
                if reference is None:
                    reference = reference_log_probs(config, weights,
                                                    gate_ids(tokenizer, config))
                report = measure_quality(staging, config, weights, tokenizer, reference)
                progress(report.summary())
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        if report is None or report.passed:
            break
        shutil.rmtree(staging, ignore_errors=True)
        failed.append(report)
        precision = SAFER[precision]
        progress(fallback_notice(failed, precision))
    try:
        manifest = dataclasses.replace(manifest, quality=_quality_record(report, asked, failed,
                                                                         precision))
        write_manifest(staging, manifest)
        if check:
            # against the checkpoint's own weights: smoothing must not change the function
            progress("checking against the numpy reference")
            result = check_against_reference(staging, config, weights, tokenizer)
            progress(f"max |Δlogit| {result['max_abs_dlogit']:.3g}, "
                     f"top-1 agreement {result['top1_agreement']:.1%}, "
                     f"relative error {result['relative_error']:.3g}")
            manifest = dataclasses.replace(manifest, check=result)
            write_manifest(staging, manifest)
        # checked again: a person may have put a file into it while this ran
        _move_into_place(staging, _writable_out(src, out))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(f"wrote {out} in {time.perf_counter() - started:.1f} s")
    return manifest


def _quality_record(report: QualityReport | None, asked: str, failed: list[QualityReport],
                    precision: str) -> dict[str, object]:
    """The manifest's "quality": the gate's figures for the model made ({} when unmeasured),
    and, when the gate changed the precision, the one asked for and the line saying why."""
    record: dict[str, object] = report.to_json() if report is not None else {}
    if failed:
        record.update(asked=asked, fallback=fallback_notice(failed, precision))
    return record


def _convert(staging: Path, src: Path, config: GPT2Config, weights: Mapping[str, np.ndarray],
             tokenizer: Tokenizer, precision: str, progress: Progress, kv_cache: str | None,
             on_layer: Callable[[int, int], None] | None, quant: QuantOptions,
             smooth: bool, prompt_graph: bool) -> Manifest:
    """The model in `precision` written into the empty folder `staging`, with its manifest."""
    kv_cache = kv_cache or default_kv_cache(precision)
    calibration_ids = tokenizer.encode(CALIBRATION_TEXT)
    smooth_alpha = SMOOTH_ALPHA if smooth and precision in WEIGHT_BITS else None
    graph_weights: Mapping[str, np.ndarray] = weights
    if smooth_alpha is not None:
        progress(f"smoothing the weights for {precision} (SmoothQuant, alpha {smooth_alpha})")
        graph_weights = smooth_weights(weights, config, calibration_ids, smooth_alpha)
    kv_scales = None
    if kv_cache == "int8":
        # measured on the weights the graph holds, so the scales fit the keys and values it makes
        progress("measuring the key/value ranges for the int8 KV cache")
        kv_scales = calibrate_kv_scales(graph_weights, config, calibration_ids)
    progress(f"building the {precision} graph ({config.n_params / 1e6:.0f}M parameters, "
             f"{kv_cache} KV cache)")
    # int8 models also get the prompt graph (PROMPT_GRAPH, models.graph's PROMPT_FORMAT), which
    # the runner runs prompts through; its weights go to the same EXTERNAL_DATA, and those both
    # graphs hold (the embedding, the LayerNorms, the biases) are stored once. on_layer counts
    # the blocks of both graphs as one conversion.
    with_prompt = prompt_graph and has_prompt_graph(precision, kv_cache)
    blocks = config.n_layer * (2 if with_prompt else 1)

    def layers_done(offset: int) -> Callable[[int, int], None] | None:
        if on_layer is None:
            return None
        return lambda done, _total: on_layer(offset + done, blocks)

    written: dict[str, onnx.TensorProto] = {}
    with open(staging / EXTERNAL_DATA, "wb") as data:
        model = build_graph(config, graph_weights, precision, source=str(src),
                            kv_cache=kv_cache, kv_scales=kv_scales, data=data,
                            data_location=EXTERNAL_DATA, on_layer=layers_done(0), quant=quant,
                            written=written)
        prompt_model = None
        if with_prompt:
            progress("building the prompt graph")
            prompt_model = build_graph(config, graph_weights, precision, source=str(src),
                                       kv_cache=kv_cache, kv_scales=kv_scales, data=data,
                                       data_location=EXTERNAL_DATA,
                                       on_layer=layers_done(config.n_layer), quant=quant,
                                       prompt=True, written=written)
    names = _write_folder(staging, model, config, tokenizer)
    del model
    if prompt_model is not None:
        onnx.save_model(prompt_model, str(staging / PROMPT_GRAPH))
        names.insert(1, PROMPT_GRAPH)
        del prompt_model
    manifest = Manifest(precision=precision, source=str(src), graph_format=FORMAT,
                        files=describe_files(staging, names), n_params=config.n_params,
                        kv_cache=kv_cache, smoothquant=smooth_alpha)
    write_manifest(staging, manifest)
    return manifest


def _check_convertible(src: Path, config: GPT2Config, tokenizer: Tokenizer,
                       precision: str) -> None:
    """What config.json alone cannot tell (GPT2Config checks the rest): that the tokenizer has
    the model's vocabulary, and that the precision's weight blocks fit n_embd. Either mismatch
    would convert into a model that fails only when it runs."""
    config_file = src / "config.json"
    if tokenizer.vocab_size != config.vocab_size:
        raise ModelLoadError(f"{config_file}: vocab_size {config.vocab_size} does not match the "
                             f"{tokenizer.vocab_size} tokens of the tokenizer beside it; use the "
                             "tokenizer files that came with this checkpoint.")
    bits = WEIGHT_BITS.get(precision)
    block = min(BLOCK_SIZES[bits]) if bits else 1
    if config.n_embd % block:
        raise ModelLoadError(f"{config_file}: n_embd {config.n_embd} is not a multiple of "
                             f"{block}, which {precision} weights need (they are quantised in "
                             "blocks); convert this model to fp32 or fp16 instead.")


def _writable_out(src: Path, out: Path) -> Path:
    """`out` with its symlinks resolved, once it is known that writing the model there loses
    nothing: it is not `src`, inside it or around it, and it is a new name, an empty folder or
    a Ghostpen model folder holding only its model's files. Anything else is a GhostpenError
    naming the problem and the fix."""
    target = out.resolve()
    if target.exists() and os.path.samefile(target, src):
        raise GhostpenError(f"{out} is the checkpoint folder being converted; choose a new "
                            "folder name for the model.")
    if _is_within(target, src):
        raise GhostpenError(f"{out} is inside the checkpoint folder {src}; choose a folder "
                            "outside it for the model.")
    if _is_within(src.resolve(), target):
        raise GhostpenError(f"{out} holds the checkpoint folder {src}; choose a new folder "
                            "name for the model.")
    if not os.path.lexists(target):
        return target
    if not target.is_dir():
        raise GhostpenError(f"{out} exists and is not a folder; choose a new folder name for "
                            "the model.")
    names = sorted(entry.name for entry in target.iterdir())
    if not names:
        return target
    model_files = _model_folder_files(target)
    if model_files is None:
        raise GhostpenError(f"{out} exists and is not a Ghostpen model folder; choose a new "
                            "folder name (or an empty folder) for the model.")
    others = [name for name in names if name not in model_files | FOLDER_CLUTTER]
    if others:
        raise GhostpenError(f"{out} is a Ghostpen model folder but also holds {others[0]}, "
                            "which replacing the model would delete; move it out, or choose a "
                            "new folder name.")
    return target


def _is_within(path: Path, folder: Path) -> bool:
    """Whether `path` is `folder` or lies inside it. Compared as files (samefile), not as
    strings, so that another spelling of the same folder (a symlink, another case on a
    case-insensitive disk) counts too."""
    if not folder.exists():
        return False
    return any(part.exists() and os.path.samefile(part, folder) for part in (path, *path.parents))


def _model_folder_files(folder: Path) -> set[str] | None:
    """The names a Ghostpen model folder's manifest.json accounts for (itself and the files it
    lists), or None when `folder` has no such manifest. Only the format is checked: a damaged
    model, or one of an older format version, is just what one converts again over."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text("utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        return None
    files = manifest.get("files")
    return {MANIFEST, *(str(name) for name in files)} if isinstance(files, dict) else {MANIFEST}


def _move_into_place(staging: Path, target: Path) -> None:
    """Rename the finished `staging` folder to `target`. An old model folder there is renamed
    aside first and deleted only once the new one is in place; if the new one cannot be put
    there, the old one is put back."""
    if not os.path.lexists(target):
        staging.rename(target)
        return
    if not any(target.iterdir()):
        # an empty folder: nothing to keep, and Windows renames onto no folder at all
        target.rmdir()
        staging.rename(target)
        return
    old = _free_sibling(target, "old")
    target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        old.rename(target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _free_sibling(out: Path, tag: str) -> Path:
    """A hidden name beside `out` that nothing has yet."""
    while True:
        sibling = out.parent / f".{out.name}.{tag}-{secrets.token_hex(4)}"
        if not os.path.lexists(sibling):
            return sibling


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


def check_against_reference(folder: Path, config: GPT2Config, weights: Mapping[str, np.ndarray],
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
    parser.add_argument("--no-smooth", dest="smooth", action="store_false",
                        help="int8/int4: quantise the weights as they are, without folding "
                             "SmoothQuant into them first")
    parser.add_argument("--no-gate", dest="gate", action="store_false",
                        help="fp16/int8/int4: keep the precision asked for without measuring it "
                             "against fp32 on the built-in text (for benches that measure a "
                             "precision on purpose)")
    parser.add_argument("--prompt-graph", action="store_true",
                        help="int8: add a prompt graph (int8 GEMMs) that prefills long prompts "
                             "about 1.8x as fast, for a second copy of the layer weights (GPT-2 "
                             "124M: +163 MB peak memory)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    args = parser.parse_args(argv)
    try:
        export_model(args.src, args.out, args.precision, args.check, kv_cache=args.kv_cache,
                     smooth=args.smooth, gate=args.gate, prompt_graph=args.prompt_graph)
    except (GhostpenError, OSError) as error:  # OSError: the disk (full, read-only, denied)
        if args.debug:
            raise
        message = user_message(error, f"could not convert {args.src} into {args.out}",
                               "--debug shows the traceback")
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
