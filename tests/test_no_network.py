"""Nothing leaves the machine unless the person asks for a download: the window and the CLI,
each run under strace long enough for onnxruntime's telemetry to start (it looked up
mobile.events.data.microsoft.com ~12.6 s after launch when it was on), make no connection and
send no datagram to any internet address, DNS included. Nor do they, or the converter, leave
onnxruntime's telemetry spool behind: without ORT_DISABLE_TELEMETRY onnxruntime 1.32 writes a
device id and a queue of events to upload (process, session and model-load records) under
~/.cache/Microsoft/DeveloperTools/.onnxruntime (seen on 2026-12-02)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None, reason="needs strace (apt install strace)")
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


TELEMETRY_SPOOL = Path(".cache", "Microsoft", "DeveloperTools")


def app_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a person's run: their own home (here a fresh one, to look into after),
    and nothing that switches onnxruntime's telemetry off: the app must do that itself."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
           "GHOSTPEN_DATA_DIR": str(tmp_path / "data"),
           "GHOSTPEN_CONFIG_DIR": str(tmp_path / "config"), "QT_QPA_PLATFORM": "offscreen"}
    for name in ("GHOSTPEN_FAKE_ENGINE", "ORT_DISABLE_TELEMETRY"):
        env.pop(name, None)
    return env


@needs_strace
def test_the_window_and_the_cli_touch_no_network(tiny_model: Path, tmp_path: Path) -> None:
    env = app_env(tmp_path)
    shutil.copytree(tiny_model, tmp_path / "data" / "models" / "tiny")  # the window loads it
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
    assert not (tmp_path / "home" / TELEMETRY_SPOOL).exists()


def test_no_telemetry_spool_is_written(tiny_checkpoint: Path, tmp_path: Path) -> None:
    env = app_env(tmp_path)
    # What the check looks for does appear when onnxruntime runs without the app's setting
    # (else this test could not fail, and onnxruntime has moved its spool: look for it again).
    bare = subprocess.run([sys.executable, "-c", BARE_ONNXRUNTIME_SESSION], env=env,
                          capture_output=True, text=True, timeout=120)
    assert bare.returncode == 0, bare.stderr
    if not (tmp_path / "home" / TELEMETRY_SPOOL).exists():
        pytest.skip("this onnxruntime writes no telemetry spool where 1.32 did")
    shutil.rmtree(tmp_path / "home" / TELEMETRY_SPOOL)
    # The converter: it loads the new model into onnxruntime for the quality gate and --check.
    convert = subprocess.run(
        [sys.executable, "-m", "models.export", str(tiny_checkpoint), str(tmp_path / "out"),
         "--precision", "int8", "--check"], env=env, capture_output=True, text=True, timeout=300)
    assert convert.returncode == 0, convert.stderr
    assert not (tmp_path / "home" / TELEMETRY_SPOOL).exists()


# A plain onnxruntime session with no Ghostpen module imported: the control.
BARE_ONNXRUNTIME_SESSION = """
import numpy as np, onnxruntime
from onnx import TensorProto, helper
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 9
onnxruntime.InferenceSession(model.SerializeToString()).run(None, {"x": np.ones(1, np.float32)})
"""
