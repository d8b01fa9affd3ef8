"""Model folders corrupted at random: every one gives one clear line and no traceback, and
nothing outside the folder is read or written.

    python -m tests.fault_campaign.corrupt_models [--count 200] [--seed 0] [--keep]

Each case is a copy of a real converted tiny model (int8, as Add from folder and Download make
them on a CPU) or of a foreign ONNX export of the same weights (optimum's layout, onnx/model.onnx;
or onnxruntime's, model.onnx at the top), damaged one way: a file truncated, bytes flipped, a
file missing, an extra file, a manifest field wrong, a hostile name in manifest.json (../,
absolute, a link out of the folder), a field of config.json edited with the manifest made to
agree (a hand-edited model), an export's weights moved outside its folder. Then what the app
does with a folder, in a child process: load it and generate a few greedy tokens, and Add from
folder into a models folder of its own, then load and generate with what was installed. Each
of those ends one way:

- harmless: loaded and generated the intact model's tokens (an extra file, say);
- refused: a GhostpenError of one line;
- undetectable: a foreign export whose weights changed ran and wrote other tokens (it has no
  manifest with sha256 to check them against);
- FAILED: any other exception (a traceback in the window's log), a message of several lines, a
  misleading one, NaN probabilities, other tokens from a Ghostpen model, a crash or a hang,
  or a file outside the model folder and the models folder opened, written, renamed or
  removed (the folder holding the model has a config.json and the decoy files of the hostile
  names lie further out, so that a look outside finds something to open).

The child runs under `strace -f` where strace exists (every open by onnxruntime's C++ too), and
always with a Python audit hook; between cases it opens marker paths, so each access is put
down to its case. Prints a table of kind x outcome and exits 1 if any case FAILED.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from app.engine.model_files import read_manifest
from tests.fault_campaign.common import REPO, Verdict, app_env, build_model, work_dir

PROMPT = "The lighthouse keeper climbed the stairs"
NEW_TOKENS = 4
CASE_TIMEOUT_S = 120  # a case that has not ended by then hangs
OUTCOMES = ("harmless", "refused", "undetectable", "FAILED")
KINDS = ("truncate", "flip", "missing", "extra", "manifest", "hostile", "config")
# Flags of an open that writes; anything else opened is read.
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")
STRACE_CALLS = ("open,openat,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,"
                "rmdir,link,linkat,symlink,symlinkat,truncate")

Case = dict[str, Any]


# --- the intact folders --------------------------------------------------------------------------


BASES = ("ours", "foreign", "flat")


def build_bases(campaign: Path) -> dict[str, Path]:
    """ours: a converted tiny int8 model; foreign: the same weights as an optimum export
    (onnx/model.onnx holding them, as exports under 2 GB do); flat: as onnxruntime's own tool
    exports (past_N inputs), model.onnx at the top of the folder."""
    from tests.engine.foreign_export import write_foreign_export

    bases = campaign / "bases"
    bases.mkdir()
    ours = build_model(bases, "tiny", "int8", seed=7, name="ours")
    # stamped, as a model that has been used: a copy keeps its files' sizes and mtimes, not
    # their inodes, so each case's copy is hashed again
    read_manifest(ours, verify_hashes=True)
    checkpoint = bases / "tiny-seed7-checkpoint"
    foreign = write_foreign_export(checkpoint, bases / "foreign", "optimum")
    flat = write_foreign_export(checkpoint, bases / "flat", "ort")
    (flat / "onnx" / "model.onnx").rename(flat / "model.onnx")
    (flat / "onnx").rmdir()
    return {"ours": ours, "foreign": foreign, "flat": flat}


def files_of(folder: Path) -> dict[str, int]:
    """Every file in `folder` by its relative name, with its size."""
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- the plan: each case fully determined by the seed, so a failure can be run again ------------


def plan_cases(bases: dict[str, Path], count: int, seed: int) -> list[Case]:
    """The first cases take each kind once for each folder (a short run covers them all), the
    rest are drawn: three in four of our folders, one in four a foreign export."""
    rng = random.Random(seed)
    cases = []
    for index in range(count):
        if index < len(BASES) * len(KINDS):
            base, kind = BASES[index // len(KINDS)], KINDS[index % len(KINDS)]
        else:
            base = rng.choice(BASES[1:]) if rng.random() < 0.25 else "ours"
            kind = rng.choice(KINDS)
        planner = OUR_PLANS if base == "ours" else FOREIGN_PLANS
        ops = planner[kind](rng, files_of(bases[base]))
        cases.append({"index": index, "base": base, "kind": kind, "ops": ops})
    return cases


def _pick(rng: random.Random, files: dict[str, int]) -> tuple[str, int]:
    name = rng.choice(sorted(files))
    return name, files[name]


def plan_truncate(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    name, size = _pick(rng, files)
    return [{"op": "truncate", "file": name, "size": rng.choice([0, 1, size // 2, size - 1,
                                                                 rng.randrange(size)])}]


def plan_flip(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    """Bytes flipped where they would mostly fall, in the weights (the largest file), else in
    any file."""
    name, size = max(files.items(), key=lambda item: item[1]) if rng.random() < 0.5 \
        else _pick(rng, files)
    offsets = sorted(rng.randrange(size) for _ in range(rng.choice([1, 4, 64])))
    return [{"op": "flip", "file": name, "offsets": offsets}]


def plan_missing(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    return [{"op": "delete", "file": _pick(rng, files)[0]}]


EXTRA_NAMES = ("notes.txt", "model.onnx.bak", "extra.onnx", "onnx/model.onnx",
               "pytorch_model.bin", "model.safetensors", ".hidden", "sub/deeper/file.bin",
               "manifest.json.orig", ".verified.json", "config.json.tmp", "tokenizer_config.json")


def plan_extra(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    name = rng.choice([n for n in EXTRA_NAMES if n not in files])
    return [{"op": "write", "file": name, "size": rng.choice([0, 17, 4096])}]


# Values of the wrong type or range for any field.
WRONG_VALUES: tuple[Any, ...] = (None, 123, -1, 1.5, "x", "", [], {}, True, [1, 2], {"a": 1})


def plan_manifest(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    """A field of manifest.json missing or of the wrong type or value; one of its files' size
    or sha256 wrong; a file's entry dropped."""
    top = ["format", "format_version", "precision", "source", "graph_format", "n_params",
           "kv_cache", "files", "check"]
    name = rng.choice([n for n in files if n != "manifest.json" and not n.startswith(".")])
    choice = rng.randrange(4)
    if choice == 0:
        return [{"op": "manifest", "path": [rng.choice(top)], "delete": True}]
    if choice == 1:
        return [{"op": "manifest", "path": [rng.choice(top)],
                 "value": rng.choice(WRONG_VALUES)}]
    if choice == 2:
        field = rng.choice(["size", "sha256"])
        wrong = rng.choice([*WRONG_VALUES, files[name] + 1, "0" * 64, "A" * 64])
        return [{"op": "manifest", "path": ["files", name, field], "value": wrong}]
    return [{"op": "manifest", "path": ["files", name], "delete": True}]


# Names leading out of the folder (case/model: ../../.. is the campaign's folder). DECOY is the
# absolute path of a file outside it; every entry is given the decoy's size and sha256, so that
# only the name check can stop it.
HOSTILE_NAMES = ("../../../decoy/secret.bin", "DECOY", "..\\..\\..\\decoy\\secret.bin",
                 "sub/../../../../decoy/secret.bin", "model.onnx/../../../../decoy/secret.bin",
                 "C:\\Windows\\win.ini", "/etc/hostname", "LINK", "", "a\u0000b",
                 "~/../../decoy/secret.bin", "..", "../config.json")


def plan_hostile(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    name = rng.choice(HOSTILE_NAMES)
    replaces = rng.choice([None, "model.onnx.data", "config.json", "tokenizer.json"])
    return [{"op": "hostile", "name": name, "replaces": replaces}]


CONFIG_EDITS: tuple[tuple[str, Any], ...] = (
    ("n_head", 0), ("n_head", 3), ("n_head", -2), ("n_layer", 0), ("n_layer", 9),
    ("n_embd", 0), ("n_embd", "64"), ("n_positions", 0), ("n_positions", -5),
    ("n_positions", 10**12), ("vocab_size", 10), ("vocab_size", 10**9), ("n_head", None),
    ("n_layer", 2.5), ("layer_norm_epsilon", "tiny"), ("model_type", "llama"))


def plan_config(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    """A hand edit of config.json; in our folders its manifest entry made to agree."""
    if rng.random() < 0.1:
        return [{"op": "config_text", "text": rng.choice(["", "{", "[]", "null", "\"gpt2\""])}]
    field, value = rng.choice(CONFIG_EDITS)
    return [{"op": "config", "field": field, "value": value}]


def plan_foreign_hostile(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    """An export whose graph keeps its weights in a file outside its folder (OUT: by a relative
    path with .., DECOY: an absolute one) or in the folder above the graph's (inside the model
    folder for optimum's layout, outside it for a graph at the top)."""
    return [{"op": "graph_location", "location": rng.choice(["OUT", "DECOY",
                                                             "../model.onnx_data"])}]


def plan_foreign_flip(rng: random.Random, files: dict[str, int]) -> list[dict[str, Any]]:
    """Flipped bytes; or, what flipped exponent bits do to a float weight, one of the graph's
    weights NaN."""
    if rng.random() < 0.3:
        return [{"op": "nan_weights", "which": rng.randrange(1 << 16)}]
    return plan_flip(rng, files)


OUR_PLANS = {"truncate": plan_truncate, "flip": plan_flip, "missing": plan_missing,
             "extra": plan_extra, "manifest": plan_manifest, "hostile": plan_hostile,
             "config": plan_config}

# A foreign export has no manifest: its "manifest" case is a damaged onnx/ layout instead.
FOREIGN_PLANS = {**OUR_PLANS, "hostile": plan_foreign_hostile, "flip": plan_foreign_flip,
                 "manifest": lambda rng, files: [rng.choice([
                     {"op": "write", "file": "onnx/model.onnx_data", "size": 4096},
                     {"op": "write", "file": "onnx/decoder_model_merged.onnx", "size": 100},
                     {"op": "write", "file": "model_quantized.onnx", "size": 100}])]}


# --- damaging a copy -------------------------------------------------------------------------


def apply_ops(case: Case, folder: Path, decoy: Path) -> None:
    for op in case["ops"]:
        kind = op["op"]
        path = folder / op["file"] if "file" in op else folder
        if kind == "truncate":
            with path.open("r+b") as handle:
                handle.truncate(op["size"])
        elif kind == "flip":
            data = bytearray(path.read_bytes())
            for offset in op["offsets"]:
                data[offset] ^= 0xFF
            path.write_bytes(bytes(data))
        elif kind == "delete":
            path.unlink()
        elif kind == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(random.Random(op["size"]).randbytes(op["size"]))
        elif kind == "manifest":
            edit_json(folder / "manifest.json", op["path"], op.get("value"), op.get("delete"))
        elif kind == "hostile":
            hostile_entry(folder, op["name"], op["replaces"], decoy)
        elif kind == "config":
            edit_json(folder / "config.json", [op["field"]], op["value"], False)
            agree(folder, "config.json")
        elif kind == "config_text":
            (folder / "config.json").write_text(op["text"], "utf-8")
            agree(folder, "config.json")
        elif kind == "graph_location":
            move_weights_out(folder, op["location"], decoy)
        elif kind == "nan_weights":
            nan_weights(folder, op["which"])
        else:
            raise ValueError(f"unknown op {kind}")


def edit_json(path: Path, keys: list[str], value: Any, delete: bool | None) -> None:
    data = json.loads(path.read_text("utf-8"))
    holder = data
    for key in keys[:-1]:
        holder = holder[key]
    if delete:
        holder.pop(keys[-1], None)
    else:
        holder[keys[-1]] = value
    path.write_text(json.dumps(data), "utf-8")


def agree(folder: Path, name: str) -> None:
    """Give `name` its new size and sha256 in manifest.json, as a hand edit that knew how."""
    if not (folder / "manifest.json").exists():
        return
    data = (folder / name).read_bytes()
    edit_json(folder / "manifest.json", ["files", name],
              {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, False)


def hostile_entry(folder: Path, name: str, replaces: str | None, decoy: Path) -> None:
    """Put `name` into manifest.json's files, with the decoy's size and sha256 (in place of
    `replaces`' entry when given)."""
    if name == "DECOY":
        name = str(decoy)
    elif name == "LINK":
        name = "link.bin"
        (folder / name).symlink_to(decoy)
    manifest = folder / "manifest.json"
    data = json.loads(manifest.read_text("utf-8"))
    if replaces is not None:
        data["files"].pop(replaces, None)
    data["files"][name] = {"size": decoy.stat().st_size,
                           "sha256": hashlib.sha256(decoy.read_bytes()).hexdigest()}
    manifest.write_text(json.dumps(data), "utf-8")


def nan_weights(folder: Path, which: int) -> None:
    """Set every value of one of the export's float weights (chosen by `which`) to NaN."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    graph_path = next(p for p in (folder / "onnx" / "model.onnx", folder / "model.onnx")
                      if p.exists())
    model = onnx.load(str(graph_path))
    weights = [t for t in model.graph.initializer
               if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims) > 16]
    tensor = weights[which % len(weights)]
    values = np.full(tuple(tensor.dims), np.nan, np.float32)
    tensor.CopyFrom(numpy_helper.from_array(values, tensor.name))
    onnx.save_model(model, str(graph_path))


def move_weights_out(folder: Path, location: str, decoy: Path) -> None:
    """Save the export's weights as external data at `location`, relative to the graph's
    folder (DECOY, OUT: beside the decoy, by an absolute or a relative path), so that only a
    path check stops it."""
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    graph_dir = folder / "onnx" if (folder / "onnx").is_dir() else folder
    outside = decoy.with_name(f"weights-{folder.parent.name}.bin")
    if location == "DECOY":
        location = str(outside)
    elif location == "OUT":
        location = os.path.relpath(outside, graph_dir)
    model = onnx.load(str(graph_dir / "model.onnx"))
    # the default threshold keeps the small constants, which shape inference reads, inline
    convert_model_to_external_data(model, location="weights.bin")
    onnx.save_model(model, str(graph_dir / "model.onnx"))
    # onnx refuses to write a location with "..": name it by hand, as a hostile export would
    model = onnx.load(str(graph_dir / "model.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    onnx.save_model(model, str(graph_dir / "model.onnx"))
    (graph_dir / "weights.bin").rename((graph_dir / location).resolve())


# --- one case, in the worker -----------------------------------------------------------------


def judge_refusal(error: BaseException) -> tuple[str, str]:
    from app.engine.errors import GhostpenError

    message = str(error)
    if not isinstance(error, GhostpenError):
        # lookup_lines=False: reading the source would be a read outside the case's folders
        where = traceback.StackSummary.extract(traceback.walk_tb(error.__traceback__),
                                               lookup_lines=False)[-1]
        return "FAILED", (f"{type(error).__name__}: {message.splitlines()[0] if message else ''}"
                          f" at {Path(where.filename).name}:{where.lineno}")
    if "\n" in message or not message.strip():
        return "FAILED", f"a message of {len(message.splitlines())} lines: {message!r:.300}"
    if "logit bias" in message:  # none is set: NaN logits blamed on the person's settings
        return "FAILED", f"misleading: {message}"
    return "refused", message


def try_model(folder: Path, reference: list[int], foreign: bool) -> tuple[str, str]:
    """Load `folder` and generate; its outcome and one line saying why."""
    from app.engine.engine import load_engine
    from app.engine.sampling_params import GREEDY

    try:
        engine = load_engine(folder, device="cpu", threads=1)
        try:
            events = list(engine.generate(PROMPT, GREEDY.replace(max_new_tokens=NEW_TOKENS)))
        finally:
            engine.close()
    except Exception as error:
        return judge_refusal(error)
    ids = [event.token_id for event in events]
    if not all(math.isfinite(event.p) for event in events):
        return "FAILED", f"NaN probabilities: {[event.p for event in events]}"
    if ids == reference:
        return "harmless", ""
    if foreign:
        return "undetectable", f"tokens {ids} instead of {reference}"
    return "FAILED", f"a Ghostpen model generated {ids} instead of {reference}"


def try_add(folder: Path, models: Path, reference: list[int], foreign: bool) -> tuple[str, str]:
    """Add from folder into `models`, then load what was installed."""
    from app import model_store

    try:
        installed = model_store.add_from_folder(folder, "int8", root=models)
    except Exception as error:
        outcome = judge_refusal(error)
    else:
        outcome = try_model(installed.path, reference, foreign)
    left = [p.name for p in models.iterdir() if p.name.startswith(model_store.WORK_PREFIX)] \
        if models.exists() else []
    if left:
        return "FAILED", f"left {left} in the models folder"
    return outcome


def worst(*outcomes: Sequence[str]) -> Sequence[str]:
    """The worse of [outcome, why] pairs, in the order of OUTCOMES."""
    return max(outcomes, key=lambda o: OUTCOMES.index(o[0]))


class AuditWatch:
    """Python-level file access (open, rename, remove, mkdir, rmdir, rmtree) while a case runs;
    sees what strace cannot attribute when strace is missing, not onnxruntime's C++ opens."""

    EVENTS: ClassVar[set[str]] = {"open", "os.rename", "os.remove", "os.mkdir", "os.rmdir",
                                  "shutil.rmtree", "os.link", "os.truncate"}

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, bool]] | None = None  # (event, path, writes)
        self._busy = False
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.seen is None or self._busy or event not in self.EVENTS:
            return
        self._busy = True
        try:
            writes = event != "open" or _opens_for_writing(args)
            for arg in args[:2] if event in ("os.rename", "os.link") else args[:1]:
                # a relative name is one rmtree removes inside the folder it was given
                if isinstance(arg, (str, bytes, os.PathLike)) and os.path.isabs(arg):
                    self.seen.append((event, os.path.realpath(os.fsdecode(arg)), writes))
        finally:
            self._busy = False


def _opens_for_writing(args: tuple[Any, ...]) -> bool:
    mode, flags = (*args, None, None)[1:3]
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))


def run_cases(campaign: Path, start: int) -> None:
    """The worker: cases from `start` on, one result line each in results.jsonl."""
    cases = json.loads((campaign / "cases.json").read_text("utf-8"))
    bases = {name: campaign / "bases" / name for name in BASES}
    decoy = campaign / "decoy" / "secret.bin"
    reference = references(campaign, bases)
    watch = AuditWatch()
    allowed = allowed_reads()
    with (campaign / "results.jsonl").open("a", encoding="utf-8") as results:
        for case in cases[start:]:
            index = case["index"]
            case_dir = campaign / "cases" / f"{index:04d}"
            model, models = case_dir / "model", case_dir / "models"
            shutil.copytree(bases[case["base"]], model, symlinks=True)
            # what a config.json looked for above the model would find: another model's
            (case_dir / "config.json").write_text('{"n_positions": 7}', "utf-8")
            apply_ops(case, model, decoy)
            foreign = case["base"] != "ours"
            marker(campaign, index, "begin")
            watch.seen = []
            load = try_model(model, reference[case["base"]], foreign)
            add = try_add(model, models, reference[case["base"]], foreign)
            seen, watch.seen = watch.seen, None
            marker(campaign, index, "end")
            outside = sorted({f"{event} {path}" for event, path, writes in seen
                              if not permitted(Path(path), writes, (model, models), allowed)})
            results.write(json.dumps({"index": index, "load": load, "add": add,
                                      "outside": outside}) + "\n")
            results.flush()
            shutil.rmtree(case_dir)


def references(campaign: Path, bases: dict[str, Path]) -> dict[str, list[int]]:
    """The intact models' greedy tokens (worked out once, by the first worker, on copies: a
    load writes its verification stamp into the folder). Running them also imports everything
    a case needs before the first case is watched."""
    path = campaign / "reference.json"
    if path.exists():
        reference: dict[str, list[int]] = json.loads(path.read_text("utf-8"))
    else:
        reference = {}
    for name, base in bases.items():
        warm = campaign / "warm" / name
        shutil.rmtree(warm.parent, ignore_errors=True)
        shutil.copytree(base, warm)
        ids = _greedy(warm)
        reference.setdefault(name, ids)
        added = try_add(warm, warm.parent / "models", ids, False)
        if ids != reference[name] or added[0] != "harmless":
            raise SystemExit(f"the intact {name} model does not run the same twice: {ids} then "
                             f"{reference[name]}; Add from folder: {' '.join(added)}")
        shutil.rmtree(warm.parent)
    path.write_text(json.dumps(reference), "utf-8")
    return reference


def _greedy(folder: Path) -> list[int]:
    from app.engine.engine import load_engine
    from app.engine.sampling_params import GREEDY

    engine = load_engine(folder, device="cpu", threads=1)
    return [e.token_id for e in engine.generate(PROMPT, GREEDY.replace(max_new_tokens=NEW_TOKENS))]


def marker(campaign: Path, index: int, edge: str) -> None:
    """An open that fails, seen by strace: where a case's accesses begin or end."""
    with contextlib.suppress(FileNotFoundError):
        open(campaign / "markers" / f"{edge}-{index}")  # noqa: SIM115 - it never opens


# --- where a case may look -------------------------------------------------------------------


def allowed_reads() -> tuple[str, ...]:
    """What any Python program with onnxruntime reads: the interpreter, its libraries and
    site-packages, the app's code and resources (the GPT-2 tokenizer), system libraries, /proc,
    /sys and /dev. Everything else read must be inside the case's folders."""
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(REPO / "app"),
             str(REPO / "models"), str(REPO / "resources"), "/proc", "/sys", "/dev", "/usr/lib",
             "/usr/lib64", "/lib", "/lib64", "/etc/ld.so.cache", "/usr/share/zoneinfo",
             "/etc/localtime"}
    roots |= {os.path.realpath(r) for r in list(roots)}
    roots |= {os.path.realpath(p) for p in sys.path if p and "site-packages" in p}
    return tuple(sorted(roots))


def permitted(path: Path, writes: bool, folders: tuple[Path, Path],
              allowed: tuple[str, ...]) -> bool:
    """Whether a case may touch `path`: anything inside its model folder or its models folder,
    and read what any Python program reads."""
    if any(path.is_relative_to(folder.resolve()) for folder in folders):
        return True
    # the repository itself: the import system lists it to find a module imported late
    return not writes and (path == REPO or any(path.is_relative_to(root) for root in allowed))


STRACE_LINE = re.compile(r"^\d+\s+(?:<\.\.\. )?(\w+)[( ]")
OPENED = re.compile(r"= \d+<([^>]*)>\s*$")
MARKER = re.compile(r"markers/(begin|end)-(\d+)\"")
FD_PATH = re.compile(r"(?:(\d+|AT_FDCWD)<([^>]*)>, )?\"((?:[^\"\\]|\\.)*)\"")


def strace_outside(log: Path, campaign: Path) -> dict[int, list[str]]:
    """From a `strace -f -y` log: per case, what was touched outside its folder."""
    allowed = allowed_reads()
    found: dict[int, list[str]] = {}
    current: int | None = None
    for line in log.read_text("utf-8", errors="replace").splitlines():
        if (mark := MARKER.search(line)) is not None:
            current = int(mark.group(2)) if mark.group(1) == "begin" else None
            continue
        call = STRACE_LINE.match(line)
        if current is None or call is None or "<unfinished" in line:
            continue
        name = call.group(1)
        case_dir = campaign / "cases" / f"{current:04d}"
        folders = (case_dir / "model", case_dir / "models")
        if name in ("open", "openat", "creat"):
            opened = OPENED.search(line)
            if opened is None:
                continue  # failed: nothing read
            writes = name == "creat" or any(flag in line for flag in WRITE_FLAGS)
            paths = [opened.group(1)]
        else:
            if not re.search(r"= 0\s*$", line):
                continue
            writes = True
            paths = [os.path.join(d or "", _unescape(p)) if not p.startswith("/") else
                     _unescape(p) for _fd, d, p in FD_PATH.findall(line)]
        for path in paths:
            if not permitted(Path(os.path.normpath(path)), writes, folders, allowed):
                found.setdefault(current, []).append(f"{name} {path}")
    return found


def _unescape(text: str) -> str:
    return text.encode("latin-1", "backslashreplace").decode("unicode_escape")


# --- the campaign ------------------------------------------------------------------------------


def run_worker_until_done(campaign: Path, count: int,
                          use_strace: bool) -> dict[int, dict[str, Any]]:
    """Run the worker; a worker that dies or hangs marks its case FAILED and the next worker
    goes on after it."""
    results: dict[int, dict[str, Any]] = {}
    env = app_env(campaign / "home", PYTHONDONTWRITEBYTECODE="1")
    attempt = 0
    while len(results) < count:
        start = len(results)
        attempt += 1
        log = campaign / f"strace-{attempt}.log"
        argv = [sys.executable, "-m", "tests.fault_campaign.corrupt_models", "--worker",
                str(campaign), "--start", str(start)]
        if use_strace:
            argv = ["strace", "-f", "-y", "-qq", "-s", "1024", "-e", f"trace={STRACE_CALLS}",
                    "-o", str(log), *argv]
        with (campaign / "worker.err").open("ab") as errors:
            process = subprocess.Popen(argv, cwd=REPO, env=env, stdout=errors, stderr=errors,
                                       start_new_session=True)
            status = watch_worker(process, campaign, results)
        if use_strace and log.exists():
            for index, touched in strace_outside(log, campaign).items():
                if index in results:
                    results[index]["outside"] = sorted(set(results[index]["outside"] + touched))
            log.unlink()
        if len(results) < count:  # the case in progress ended the worker
            reason = "hung" if status is None else f"the worker died with status {status} " \
                f"({last_line(campaign / 'worker.err')})"
            results[len(results)] = {"index": len(results), "load": ["FAILED", reason],
                                     "add": ["FAILED", reason], "outside": []}
    return results


def last_line(path: Path) -> str:
    lines = path.read_text("utf-8", errors="replace").strip().splitlines() if path.exists() \
        else []
    return lines[-1][:200] if lines else "no output"


def watch_worker(process: subprocess.Popen[bytes], campaign: Path,
                 results: dict[int, dict[str, Any]]) -> int | None:
    """Collect result lines until the worker exits; kill it when a case takes too long. The
    exit status, None when it hung."""
    path = campaign / "results.jsonl"
    last_progress = time.monotonic()
    while True:
        status = process.poll()
        before = len(results)
        if path.exists():
            for line in path.read_text("utf-8").splitlines():
                if line.strip():
                    result = json.loads(line)
                    results.setdefault(result["index"], result)
        if len(results) > before:
            last_progress = time.monotonic()
        if status is not None:
            return status
        if time.monotonic() - last_progress > CASE_TIMEOUT_S:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return None
        time.sleep(0.2)


def summarise(cases: list[Case], results: dict[int, dict[str, Any]],
              verbose: bool) -> tuple[Counter[Any], list[str]]:
    table: Counter[Any] = Counter()
    failures = []
    for case in cases:
        result = results[case["index"]]
        outcome, why = worst(result["load"], result["add"])
        if result["outside"]:
            outcome, why = "FAILED", f"touched outside its folder: {result['outside'][:3]}"
        table[(case["base"], case["kind"], outcome)] += 1
        if verbose:
            print(f"  case {case['index']} {case['base']} {json.dumps(case['ops'])[:120]}\n"
                  f"    load: {' '.join(result['load'])}\n    add: {' '.join(result['add'])}")
        if outcome == "FAILED":
            which = "load" if result["load"][0] == "FAILED" else "add"
            failures.append(f"case {case['index']} ({case['base']} {case['kind']} "
                            f"{json.dumps(case['ops'])[:160]}): {which}: {why}")
    return table, failures


def print_table(table: Counter[Any]) -> None:
    rows = sorted({(base, kind) for base, kind, _ in table})
    print(f"  {'folder':8} {'corruption':11}" + "".join(f"{o:>13}" for o in OUTCOMES))
    for base, kind in rows:
        print(f"  {base:8} {kind:11}" + "".join(f"{table[(base, kind, o)]:>13}"
                                                  for o in OUTCOMES))
    totals = [sum(n for (_, _, o), n in table.items() if o == outcome) for outcome in OUTCOMES]
    print(f"  {'all':20}" + "".join(f"{n:>13}" for n in totals))


def campaign_main(count: int, seed: int, keep: bool = False, use_strace: bool | None = None,
                  verbose: bool = False, folder: Path | None = None) -> int:
    """The campaign, in `folder` (default: a fresh temporary one); its exit status."""
    verdict = Verdict("corrupt_models")
    started = time.monotonic()
    campaign = folder if folder is not None else work_dir("corrupt-models", keep)
    use_strace = shutil.which("strace") is not None if use_strace is None else use_strace
    for sub in ("markers", "cases", "decoy"):
        (campaign / sub).mkdir()
    (campaign / "decoy" / "secret.bin").write_bytes(random.Random(seed).randbytes(4096))
    bases = build_bases(campaign)
    cases = plan_cases(bases, count, seed)
    (campaign / "cases.json").write_text(json.dumps(cases), "utf-8")
    print(f"corrupt_models: {count} folders, seed {seed}, file access watched by "
          f"{'strace and ' if use_strace else ''}an audit hook, in {campaign}", flush=True)
    results = run_worker_until_done(campaign, count, use_strace)
    table, failures = summarise(cases, results, verbose)
    print_table(table)
    for failure in failures:
        verdict.check(False, failure)
    totals = Counter(outcome for (_, _, outcome), n in table.items() for _ in range(n))
    for outcome in OUTCOMES:
        verdict.figure(outcome, totals[outcome], summary=True)
    verdict.figure("time", f"{time.monotonic() - started:.0f} s")
    return verdict.finish()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign.corrupt_models",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="folders to corrupt")
    parser.add_argument("--quick", action="store_true",
                        help="21 folders: every kind of damage once per folder layout")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corruptions")
    parser.add_argument("--keep", action="store_true", help="keep the campaign's folder")
    parser.add_argument("--verbose", action="store_true", help="print every case's outcome")
    parser.add_argument("--no-strace", action="store_true",
                        help="watch file access with the audit hook only")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        run_cases(args.worker, args.start)
        return 0
    count = 21 if args.quick else args.count
    return campaign_main(count, args.seed, args.keep, False if args.no_strace else None,
                         args.verbose)


if __name__ == "__main__":
    sys.exit(main())
