"""`python -m models.random PRESET OUT --seed N`: a seeded random GPT-2 checkpoint, HF layout.

Real GPT-2 weights cannot be downloaded everywhere (CI has no internet); speed depends only on
shapes and correctness is proven by parity on the same weights, so these stand in for them.

GPT-2's own init (std 0.02) makes near-uniform logits, so greedy decoding repeats one token and
a parity test proves little. The default gives the embeddings std 0.2 and the layers
0.2 / sqrt(n_layer): varied tokens with clear top-1 margins (mean top-1 probability about 0.4
at 124M) while the network stays well conditioned (fp32 and fp64 logits agree to 2e-5). Layer
weights of std 0.2 make attention so sharp that fp32 round-off alone moves 124M's logits by
0.04, which would drown any real parity bug. --init-std scales both.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

from models.checkpoint import GPT2Config, expected_shapes

PRESETS: dict[str, GPT2Config] = {
    "tiny": GPT2Config(n_embd=64, n_layer=2, n_head=4),
    "distilgpt2": GPT2Config(n_embd=768, n_layer=6, n_head=12),
    "gpt2": GPT2Config(n_embd=768, n_layer=12, n_head=12),
    "gpt2-medium": GPT2Config(n_embd=1024, n_layer=24, n_head=16),
    "gpt2-large": GPT2Config(n_embd=1280, n_layer=36, n_head=20),
    "gpt2-xl": GPT2Config(n_embd=1600, n_layer=48, n_head=25),
}


def random_weights(config: GPT2Config, seed: int, init_std: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    layer_std = init_std / np.sqrt(config.n_layer)  # deeper stacks amplify round-off more
    weights: dict[str, np.ndarray] = {}
    for name, shape in expected_shapes(config).items():
        if name.endswith(("ln_1.weight", "ln_2.weight", "ln_f.weight")):
            tensor = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            tensor = 0.02 * rng.standard_normal(shape)
        else:
            std = init_std if name in ("wte.weight", "wpe.weight") else layer_std
            if name.endswith("c_proj.weight"):  # GPT-2 scales residual projections by depth
                std /= np.sqrt(2 * config.n_layer)
            tensor = std * rng.standard_normal(shape)
        weights[name] = np.ascontiguousarray(tensor, dtype=np.float32)
    return weights


def write_random_checkpoint(
    preset: str, out: Path, seed: int = 0, init_std: float = 0.2
) -> GPT2Config:
    """Write config.json, model.safetensors and the real GPT-2 tokenizer files into `out`."""
    from safetensors.numpy import save_file

    from app.engine.tokenizer import GPT2_TOKENIZER_DIR

    config = PRESETS[preset]
    out.mkdir(parents=True, exist_ok=True)
    # One metadata key only: safetensors writes them in hash order, and the same seed should
    # give the same bytes. The seed goes into config.json instead. "pt", as on the Hub's GPT-2
    # files: transformers before 5 refuses any other format, and so do the tools built on it
    # (optimum's exporter, onnxruntime's convert_to_onnx); the tensors are plain arrays either way.
    save_file(random_weights(config, seed, init_std), str(out / "model.safetensors"),
              metadata={"format": "pt"})
    hf_config = {**config.to_hf_json(), "ghostpen_random": {"seed": seed, "init_std": init_std}}
    (out / "config.json").write_text(json.dumps(hf_config, indent=2), "utf-8")
    for name in ("vocab.json", "merges.txt"):
        shutil.copyfile(GPT2_TOKENIZER_DIR / name, out / name)
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.random", description=__doc__)
    parser.add_argument("preset", choices=sorted(PRESETS))
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-std", type=float, default=0.2)
    args = parser.parse_args(argv)
    config = write_random_checkpoint(args.preset, args.out, args.seed, args.init_std)
    print(f"wrote {args.preset} ({config.n_params / 1e6:.1f}M parameters, seed {args.seed}) "
          f"to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
