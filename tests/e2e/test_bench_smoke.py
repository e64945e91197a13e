"""The benchmark, small: a few hundred streams straight to the fake upstream and
through run.py, checked for correctness only (no timing assertions: CI machines
are shared and noisy). The full benchmark is ``python -m bench``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_smoke_every_stream_complete_in_order(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "bench", "--smoke", f"--json={out}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())["smoke"]
    for side in ("direct", "relay"):
        run = result[side]
        assert run["ok"] == run["streams"] == 300, (side, run["errors"])
        assert run["deltas"] == 300 * 5
        assert run["lost"] == 0 and run["out_of_order"] == 0 and run["errors"] == {}
    assert "relay vs direct" in proc.stdout  # the side-by-side table was printed
