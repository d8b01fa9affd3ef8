"""Ghostpen: write with GPT-2 running locally."""

import time

__version__ = "0.1.0"
LAUNCHED_AT = time.perf_counter()  # for "window shown N s after launch"
