"""Ghostpen: write with GPT-2 running locally."""

__version__ = "0.1.0"
