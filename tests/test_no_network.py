"""Nothing leaves the machine unless the person asks for a download: the window and the CLI,
each run under strace long enough for onnxruntime's telemetry to start (it looked up
mobile.events.data.microsoft.com ~12.6 s after launch when it was on), make no connection and
send no datagram to any internet address, DNS included."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="needs strace (apt install strace)")
WATCH_S = 18  # past the ~12.6 s at which onnxruntime's telemetry looked its host up
# A syscall that reaches for the network: a connect or a send to an IPv4 / IPv6 address. Local
# sockets (nscd, X11, D-Bus: AF_UNIX) and netlink are not the network.
NETWORK_CALL = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)\(.*\bAF_INET6?\b")


def traced(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start `argv` under strace (following threads and children), stopped after WATCH_S."""
    return subprocess.Popen(
        [str(STRACE), "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o",
         str(log), "timeout", str(WATCH_S), *argv],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def network_calls(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines()
            if NETWORK_CALL.search(line)]


def test_the_window_and_the_cli_touch_no_network(tiny_model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(tiny_model, data / "models" / "tiny")  # so the window loads a real model
    env = {**os.environ, "GHOSTPEN_DATA_DIR": str(data),
           "GHOSTPEN_CONFIG_DIR": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen"}
    env.pop("GHOSTPEN_FAKE_ENGINE", None)
    env.pop("ORT_DISABLE_TELEMETRY", None)  # the app must switch it off itself
    window_log, cli_log = tmp_path / "window.strace", tmp_path / "cli.strace"
    runs = [
        traced([sys.executable, "-m", "app"], env, window_log),
        # A generation long enough to still be writing when the watch ends.
        traced([sys.executable, "-m", "app", "generate", "--model", str(tiny_model),
                "--prompt", "The lighthouse", "--max-new-tokens", "100000", "--seed", "1"],
               env, cli_log),
    ]
    # strace returns the traced command's status: 124 is timeout's, so both were still running
    # when the watch ended (neither quit early, before the telemetry would have started).
    assert [run.wait(timeout=WATCH_S + 60) for run in runs] == [124, 124]
    assert network_calls(window_log) == []
    assert network_calls(cli_log) == []
