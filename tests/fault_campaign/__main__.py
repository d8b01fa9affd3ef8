"""`python -m tests.fault_campaign [--quick] [--only NAME,...]`: every fault module in turn,
each in its own process (a crash is a failed fault, not a stopped campaign), then a summary.

The modules are listed in docs/reliability.md with what each does and the figures measured.
A module in this package that another engineer adds (corrupt_models) runs too when present.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import time

FAULTS = ("suggestions", "kill_save", "disk_full", "download_kill", "offline", "corrupt_models")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fault_campaign",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each fault's short run")
    parser.add_argument("--only", help="comma-separated fault names")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else [
        name for name in FAULTS if importlib.util.find_spec(f"tests.fault_campaign.{name}")]
    results: list[tuple[str, int | None, float, str]] = []
    for name in names:
        print(f"=== {name}", flush=True)
        started = time.monotonic()
        command = [sys.executable, "-m", f"tests.fault_campaign.{name}",
                   *(["--quick"] if args.quick else [])]
        last = ""
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, bufsize=1) as process:
            assert process.stdout is not None
            for line in process.stdout:
                print(line, end="", flush=True)
                last = line.strip() or last
        results.append((name, process.returncode, time.monotonic() - started, last))
    print("\n=== fault campaign" + (" (--quick)" if args.quick else ""), flush=True)
    for name, status, took, last in results:
        verdict = "PASS" if status == 0 else f"FAIL (exit {status})"
        print(f"{name:<15} {verdict:<14} {took:6.0f} s\n    {last}", flush=True)
    failed = [name for name, status, _, _ in results if status != 0]
    print(f"{len(results) - len(failed)}/{len(results)} passed" +
          (f"; failed: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
