"""Offline tooling: GPT-2 checkpoints in, our ONNX model folders out; seeded random checkpoints."""
