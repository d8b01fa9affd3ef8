"""Fault campaign: scripts that break Ghostpen on purpose and measure what it keeps."""
