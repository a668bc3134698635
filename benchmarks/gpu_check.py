"""One prepared run of every GPU check: CUDA tests, then the benchmarks on ``cuda``.

Meant for a machine with an NVIDIA GPU (CI has none). It prints each step's output and a
final summary; exit status is non-zero if any step failed.

    python benchmarks/gpu_check.py            # all steps
    python benchmarks/gpu_check.py --quick    # tests and the 64-map solver batch only
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 1
    print(torch.cuda.get_device_name(), "torch", torch.__version__, flush=True)
    py = sys.executable
    steps = [
        ("cuda tests", [py, "-m", "pytest", "-q", "-k", "cuda", "tests"]),
        ("solver batch 64 x grid 28",
         [py, "benchmarks/solvers.py", "--device", "cuda", "--grids", "28", "--batch", "64",
          "--backends", "admm"]),
    ]
    if not args.quick:
        steps += [
            ("solvers grid 28-224", [py, "benchmarks/solvers.py", "--device", "cuda",
                                     "--grids", "28", "56", "112", "224", "--backends", "admm"]),
            ("overhead", [py, "benchmarks/overhead.py", "--device", "cuda"]),
            ("end to end", [py, "benchmarks/end_to_end.py", "--device", "cuda"]),
        ]
    summary = []
    for name, cmd in steps:
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)
        summary.append((name, rc, time.perf_counter() - t0))
    print("\n=== summary")
    for name, rc, seconds in summary:
        print(f"{name:<28} {'ok' if rc == 0 else f'FAILED ({rc})':<12} {seconds:7.1f} s")
    return int(any(rc for _, rc, _ in summary))


if __name__ == "__main__":
    sys.exit(main())
