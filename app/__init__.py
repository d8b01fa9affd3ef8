"""Ghostpen: write with GPT-2 running locally."""

import os
import time

# onnxruntime (1.32 seen) looks up its telemetry host, mobile.events.data.microsoft.com, when it
# starts, unless this is set before it is imported; disable_telemetry_events() after import does
# not stop it. Every entry point (window, CLI, bench, the converter, the frozen app) imports this
# package before onnxruntime, and subprocesses inherit the setting. Nothing leaves the machine
# unless the person asks for a download.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
LAUNCHED_AT = time.perf_counter()  # for "window shown N s after launch"
