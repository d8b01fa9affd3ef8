"""Which onnxruntime execution provider to use: the best one offered, CPU when that fails."""

from __future__ import annotations

from dataclasses import dataclass

DEVICE_PROVIDERS = {
    "cuda": "CUDAExecutionProvider",
    "directml": "DmlExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
# What a person can ask for, in the order the Device menu and `--device` list them.
DEVICES = ("auto", "cpu", "cuda", "directml")


@dataclass(frozen=True)
class ProviderChoice:
    providers: tuple[str, ...]  # in the order to try
    reason: str  # why the wished-for provider is not first; "" when it is


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def choose_providers(device: str, available: list[str] | None = None) -> ProviderChoice:
    """Best first: CUDA, DirectML, then CPU; CPU is always the last resort."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    available = available_providers() if available is None else available
    if device == "auto":
        wished = [DEVICE_PROVIDERS[d] for d in ("cuda", "directml") if
                  DEVICE_PROVIDERS[d] in available]
        return ProviderChoice((*wished, "CPUExecutionProvider"), "")
    provider = DEVICE_PROVIDERS[device]
    if provider == "CPUExecutionProvider":
        return ProviderChoice(("CPUExecutionProvider",), "")
    if provider not in available:
        return ProviderChoice(
            ("CPUExecutionProvider",),
            f"{provider} is not in this onnxruntime build (install ghostpen[{device}]); "
            "running on CPU.",
        )
    return ProviderChoice((provider, "CPUExecutionProvider"), "")
