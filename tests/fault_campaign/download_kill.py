"""Fault: a model download killed at a random moment, then started again.

`python -m tests.fault_campaign.download_kill [--quick] [--trials N]`

The stand-in Hub (tests/hub_server.py, two HTTP servers on 127.0.0.1) serves a tiny random
GPT-2 checkpoint as openai-community/gpt2, its 13.5 MB model.safetensors throttled to about
6 MB/s so that a kill can land mid-transfer. Each trial runs the real download in a child
process (app.hub_download.download_and_convert through huggingface_hub, as Models ▸ Download
does, int8), SIGKILLs it at a random moment (4 in 5 trials inside the weights' transfer, the
rest inside the conversion that follows), then runs the same download again in a new process,
which must finish: asking only for the bytes it does not have (a Range request from exactly the
size of the partial file kept on disk), checking the hash (the app's own check, and here the
blob's sha256 against the checkpoint's), converting, and loading the model, which must write.
Each trial starts from empty folders. 20 trials, 2 with --quick.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.fault_campaign.common import Child, Verdict, app_env, child_argv, emit, work_dir

TRICKLE_S = 0.01  # the Hub's pause after each 64 KiB of the weights: about 6 MB/s
CHILD_TIMEOUT_S = 180.0
WEIGHTS = "model.safetensors"


def child() -> int:
    """The download as the Models dialog runs it, then the model loaded and writing."""
    from app import hub_download
    from app.engine.engine import load_engine
    from app.engine.sampling_params import SamplingParams
    from app.model_store import TaskProgress
    from tests.hub_server import GPT2_REPO

    def report(progress: TaskProgress) -> None:
        emit("progress", progress.stage, progress.done, progress.total,
             json.dumps(progress.message))

    model = hub_download.download_and_convert(GPT2_REPO, "int8", report)
    emit("installed", model.name)
    engine = load_engine(model.path, "cpu")
    events = list(engine.generate("The lighthouse", SamplingParams(seed=1, max_new_tokens=8)))
    emit("generated", len(events))
    return 0


@dataclass
class Figures:
    kills: dict[str, int] = field(default_factory=dict)  # where the kill landed -> how many
    kept_fraction: list[float] = field(default_factory=list)  # of the weights, at the kill
    resumed: int = 0  # the second run asked for the rest with a Range from what was kept
    refetched: list[int] = field(default_factory=list)  # weight bytes the server sent twice
    finished: int = 0  # second run: hash checked, converted, loaded, wrote
    leftovers: int = 0  # .ghostpen-work-* folders a kill mid-conversion left in models/
    second_run_s: list[float] = field(default_factory=list)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign.download_kill",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 trials instead of 20")
    parser.add_argument("--trials", type=int)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child()

    from models.random import write_random_checkpoint
    from tests.hub_server import GPT2_REPO, FakeHub

    trials = args.trials or (2 if args.quick else 20)
    verdict = Verdict("download_kill")
    folder = work_dir("download-kill", args.keep)
    checkpoint = folder / "checkpoint"
    write_random_checkpoint("tiny", checkpoint, seed=0)
    weights = (checkpoint / WEIGHTS).read_bytes()
    size, digest = len(weights), hashlib.sha256(weights).hexdigest()
    transfer_s = size / 65536 * TRICKLE_S
    verdict.figure("checkpoint", f"tiny (random, seed 0), {WEIGHTS} {size:,} bytes, served at "
                   f"about {size / transfer_s / 1e6:.1f} MB/s; converted to int8")
    rng = random.Random(args.seed)
    figures = Figures()
    with FakeHub(lifetime_s=3600) as hub:
        hub.add_repo(GPT2_REPO, checkpoint)
        hub.trickle_s = TRICKLE_S
        for trial in range(trials):
            aim = "transfer" if rng.random() < 0.8 else "conversion"
            delay = rng.uniform(0, transfer_s) if aim == "transfer" else rng.uniform(0, 0.6)
            run_trial(trial, aim, delay, folder / f"trial-{trial:02d}", hub, size, digest,
                      figures, verdict)
    report(trials, size, figures, verdict)
    return verdict.finish()


def run_trial(trial: int, aim: str, delay: float, root: Path, hub: object, size: int,
              digest: str, figures: Figures, verdict: Verdict) -> None:
    from app import model_store
    from tests.hub_server import FakeHub

    assert isinstance(hub, FakeHub)
    where = f"trial {trial}"
    env = app_env(root, HF_ENDPOINT=hub.endpoint)
    env.pop("HF_HUB_OFFLINE")
    stderr = root / "children.stderr"
    root.mkdir(parents=True)
    sent_before = hub.sent.get(WEIGHTS, 0)

    first = Child(child_argv("download_kill", "--child"), env, stderr)
    if aim == "transfer":
        signal_line = first.expect(lambda line: f"Downloading {WEIGHTS}" in line
                                   and int(line.split()[2]) > 0, CHILD_TIMEOUT_S)
    else:
        signal_line = first.expect(lambda line: line.startswith("progress convert"),
                                   CHILD_TIMEOUT_S)
    if not verdict.check(signal_line is not None, f"{where}: the download never reached its "
                         f"{aim} (see {stderr})"):
        first.stop()
        return
    time.sleep(delay)
    first.kill()
    progress = [line.split(" ", 4) for _, line in first.lines if line.startswith("progress")]
    landed = "before any progress" if not progress else "conversion" \
        if progress[-1][1] == "convert" else json.loads(progress[-1][4])
    figures.kills[landed] = figures.kills.get(landed, 0) + 1

    hf = root / "hf"
    partial = sorted(hf.rglob("*.incomplete"))
    blobs = [p for p in hf.rglob("blobs/*") if p.is_file() and not p.name.endswith(".incomplete")
             and p.stat().st_size == size]
    kept = size if blobs else sum(p.stat().st_size for p in partial if p.stat().st_size <= size)
    figures.kept_fraction.append(kept / size)
    gets_before = len(hub.gets(WEIGHTS))

    started = time.monotonic()
    second = Child(child_argv("download_kill", "--child"), env, stderr)
    done = second.expect(lambda line: line.startswith("generated"), CHILD_TIMEOUT_S)
    status = second.finish(60)
    figures.second_run_s.append(time.monotonic() - started)
    if not verdict.check(done is not None and status == 0, f"{where}: the download started "
                         f"again did not finish (exit {status}; see {stderr})"):
        return
    assert done is not None
    asked = hub.gets(WEIGHTS)[gets_before:]
    if kept == size:
        ok = verdict.check(not asked, f"{where}: the weights were whole on disk, yet asked for "
                           "again")
    elif kept > 0:
        ok = verdict.check(bool(asked) and asked[0].range == f"bytes={kept}-",
                           f"{where}: {kept:,} bytes were kept, but the new run asked with "
                           f"Range {asked[0].range if asked else None!r}")
        figures.resumed += ok
    else:
        ok = verdict.check(bool(asked) and asked[0].range is None,
                           f"{where}: nothing was kept, yet the new run asked for a Range")
    figures.refetched.append(hub.sent.get(WEIGHTS, 0) - sent_before - size)

    snapshot = next(hf.rglob(f"snapshots/*/{WEIGHTS}"), None)
    ok = verdict.check(snapshot is not None and hashlib.sha256(
        snapshot.read_bytes()).hexdigest() == digest, f"{where}: the weights in the Hub cache "
        "are not the checkpoint's") and ok
    ok = verdict.check(not list(hf.rglob("*.incomplete")), f"{where}: a partial file is left "
                       "after the finished download") and ok
    models = model_store.list_models(root / "data" / "models")
    ok = verdict.check([(m.name, m.usable) for m in models] == [("gpt2-int8", True)],
                       f"{where}: installed models {[(m.name, m.problem) for m in models]}, "
                       "expected gpt2-int8 alone, usable") and ok
    ok = verdict.check(int(done[1].split()[1]) == 8, f"{where}: the model wrote "
                       f"{done[1].split()[1]} tokens, expected 8") and ok
    figures.finished += ok
    figures.leftovers += len(list((root / "data" / "models").glob(".ghostpen-work-*")))


def report(trials: int, size: int, figures: Figures, verdict: Verdict) -> None:
    verdict.figure("kills", f"{trials}; where they landed: " + ", ".join(
        f"{where} {n}" for where, n in sorted(figures.kills.items())))
    kept = figures.kept_fraction
    if kept:
        verdict.figure("weights on disk at the kill", f"min {min(kept):.0%}, median "
                       f"{statistics.median(kept):.0%}, max {max(kept):.0%}")
    verdict.figure("resumed with a Range request from the kept bytes", figures.resumed,
                   summary=True)
    if figures.refetched:
        verdict.figure("weight bytes the Hub sent twice (in flight at the kill)",
                       f"median {statistics.median(figures.refetched):,.0f}, max "
                       f"{max(figures.refetched):,} of {size:,} per trial")
    verdict.figure("finished after the restart: hash checked, converted, loaded, wrote",
                   f"{figures.finished}/{trials}", summary=True)
    if figures.second_run_s:
        verdict.figure("restarted run, start to writing",
                       f"median {statistics.median(figures.second_run_s):.1f} s")
    verdict.figure("work folders left in models/ by kills mid-conversion", figures.leftovers)


if __name__ == "__main__":
    sys.exit(main())
