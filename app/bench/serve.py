"""`python -m app bench serve`: the completions server under load from several clients at once.

Starts `python -m app serve` on a free loopback port (a subprocess, so its memory is its own)
and sends it streamed completions from 1, 4 and 16 clients at once, each client one
connection sending its next request when the last one ends. Every request continues a slice
of the same story (as an editor plugin sends the text before the cursor) and samples with its
own seed. Per level: requests per second, latency (request sent to the last event) and time to
the first token, p50 and p95. The server's RSS is read after a warm-up and again after all
requests (--total, 1,000 by default: the levels, then more at the widest level). The server
runs one generation at a time, so more clients mean longer waits, not more throughput.
Bounded: a fixed number of requests, each with a timeout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from app.bench.autocomplete import PROSE, percentile
from app.bench.common import default_cache_dir, machine_description, prepare_models

REQUEST_TIMEOUT_S = 120
WARM_UP_REQUESTS = 3


@dataclass(frozen=True)
class Level:
    clients: int
    requests: int
    wall_s: float
    latencies_ms: list[float]
    first_token_ms: list[float]
    failures: int


class _Server:
    """`python -m app serve` in a subprocess, its address read from its first line."""

    def __init__(self, model: Path, threads: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--model", str(model), "--port", "0",
             "--threads", str(threads)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        if " at http://" not in line:
            self.stop()
            raise SystemExit(f"error: the server did not start: {line.strip()}")
        address = line.split(" at http://", 1)[1].split("/v1", 1)[0]
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        # Keep reading what it logs, so that a full pipe never blocks it.
        threading.Thread(target=self.process.stderr.read, daemon=True).start()

    def rss_mb(self) -> float | None:
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        try:
            import psutil
        except ImportError:
            return None
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def health(self) -> dict[str, object]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", "/health")
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT if sys.platform != "win32"
                                     else signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def request_body(number: int, max_tokens: int) -> bytes:
    """The text before a cursor somewhere in the story, sampled with the request's own seed."""
    end = 400 + (number * 37) % (len(PROSE) - 400)
    return json.dumps({"prompt": PROSE[:end], "max_tokens": max_tokens, "seed": number,
                       "stream": True}).encode()


def one_request(connection: http.client.HTTPConnection,
                body: bytes) -> tuple[float, float] | None:
    """(latency, time to the first token) in ms of one streamed completion; None if it
    failed."""
    started = time.perf_counter()
    connection.request("POST", "/v1/completions", body=body,
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    if response.status != 200:
        response.read()
        return None
    first_token = None
    for line in response:
        if line.startswith(b"data: [DONE]"):
            break
        if first_token is None and line.startswith(b"data: {"):
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0]["text"]:
                first_token = time.perf_counter()
    response.read()  # the end of the chunked body, so that the connection is reused
    ended = time.perf_counter()
    if first_token is None:
        return None
    return (ended - started) * 1000, (first_token - started) * 1000


def run_level(server: _Server, clients: int, requests: int, first_number: int,
              max_tokens: int) -> Level:
    numbers = iter(range(first_number, first_number + requests))
    lock = threading.Lock()
    latencies: list[float] = []
    first_tokens: list[float] = []
    failures = 0

    def client() -> None:
        nonlocal failures
        connection = http.client.HTTPConnection(server.host, server.port,
                                                timeout=REQUEST_TIMEOUT_S)
        try:
            while True:
                with lock:
                    number = next(numbers, None)
                if number is None:
                    return
                try:
                    timing = one_request(connection, request_body(number, max_tokens))
                except (OSError, http.client.HTTPException):
                    timing = None
                    connection.close()
                with lock:
                    if timing is None:
                        failures += 1
                    else:
                        latencies.append(timing[0])
                        first_tokens.append(timing[1])
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Level(clients, requests, time.perf_counter() - started, latencies, first_tokens,
                 failures)


def format_table(levels: list[Level], max_tokens: int) -> str:
    lines = [f"| clients | requests | failed | requests/s | latency p50 (ms) | latency p95 (ms) "
             f"| first token p50 (ms) | first token p95 (ms) | ({max_tokens} tokens each) |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for level in levels:
        done = len(level.latencies_ms)
        if not done:
            lines.append(f"| {level.clients} | {level.requests} | {level.failures} | "
                         "– | – | – | – | – | |")
            continue
        lines.append(
            f"| {level.clients} | {level.requests} | {level.failures} | "
            f"{done / level.wall_s:.2f} | {percentile(level.latencies_ms, 50):.0f} | "
            f"{percentile(level.latencies_ms, 95):.0f} | "
            f"{percentile(level.first_token_ms, 50):.0f} | "
            f"{percentile(level.first_token_ms, 95):.0f} | |")
    return "\n".join(lines)


def serve_bench_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app bench serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="gpt2", help="model size (default: gpt2, 124M)")
    parser.add_argument("--precision", default="int8", help="default: int8, fastest on CPU")
    parser.add_argument("--model", type=Path, default=None,
                        help="serve this model folder instead of a converted random checkpoint")
    parser.add_argument("--threads", type=int, default=2, help="the server's CPU threads")
    parser.add_argument("--clients", default="1,4,16",
                        help="clients at once, one level each (default 1,4,16)")
    parser.add_argument("--requests", type=int, default=100,
                        help="requests per level (default 100)")
    parser.add_argument("--total", type=int, default=1000,
                        help="requests in all before the second RSS reading: the levels, then "
                             "the rest at the widest level (default 1000)")
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens per completion")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="where the random checkpoint and its export are kept and reused")
    args = parser.parse_args(argv)
    levels_asked = [int(c) for c in args.clients.split(",")]
    if args.model is not None:
        folder = args.model
    else:
        cache_dir = args.cache_dir or default_cache_dir()
        folder = prepare_models(cache_dir, args.preset, [args.precision])[args.precision]

    server = _Server(folder, args.threads)
    try:
        warm = run_level(server, 1, WARM_UP_REQUESTS, 0, args.max_tokens)
        if warm.failures:
            print("error: the server failed its warm-up requests.", file=sys.stderr)
            return 2
        rss_before = server.rss_mb()
        levels: list[Level] = []
        sent = 0
        for clients in levels_asked:
            print(f"{clients} clients…", file=sys.stderr)
            levels.append(run_level(server, clients, args.requests, 1000 + sent,
                                    args.max_tokens))
            sent += args.requests
        if sent < args.total:
            print(f"{args.total - sent} more…", file=sys.stderr)
            levels.append(run_level(server, max(levels_asked), args.total - sent, 1000 + sent,
                                    args.max_tokens))
            sent = args.total
        rss_after = server.rss_mb()
        health = server.health()
    finally:
        server.stop()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"{folder.name}, {args.threads} threads; {machine_description()}"
          + (f"; load average {load[0]:.1f} at the end" if load else ""))
    print(format_table(levels, args.max_tokens))
    print(f"server RSS: {_megabytes(rss_before)} after {WARM_UP_REQUESTS} warm-up requests, "
          f"{_megabytes(rss_after)} after {sent} more; tokens generated "
          f"{health.get('tokens_generated')}, queue depth at the end {health.get('queue_depth')}")
    return 0


def _megabytes(mb: float | None) -> str:
    return "n/a" if mb is None else f"{mb:.0f} MB"
