"""The costs benchmark runs to the end in its quick mode (a smoke test: no timing is judged)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "bench_memcheck_costs.py"


def test_bench_memcheck_costs_quick_runs_and_prints_the_table() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "figure | measured | goal | verdict" in proc.stdout, out[-3000:]
