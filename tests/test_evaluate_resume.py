"""Kill and resume, proven: ``python -m cj2.evaluate`` killed with SIGKILL at a random point and run again
reuses its finished items and ends with exactly the metrics of an uninterrupted run (same config, same seed).

The judge is the tiny random model through the ``hf`` backend, in both scoring modes (verdict logits and
generated judgments with P(verdict)), so every code path that writes rows is interrupted somewhere.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cj2.evaluation import build_embedded

ARGS = ["judge.name_or_path=tiny", "judge.max_new_tokens=8", "judge.batch_size=4", "benchmark.n_queries=2",
        "benchmark.scenarios=[arithmetic]", "logger.wandb.enabled=false", "evaluate.max_generated=null",
        "evaluate.time_budget_s=null", "evaluate.bootstrap=100", "evaluate.progress=false"]
N_ITEMS = len(build_embedded(n_queries=2, scenarios=["arithmetic"]))
N_ROWS = N_ITEMS * 2 * 2  # items x 2 passes x 2 modes


def _command(root: Path, run_name: str) -> list[str]:
    return [sys.executable, "-m", "cj2.evaluate", *ARGS, f"output_root={root}", f"run_name={run_name}"]


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}


def _rows(folder: Path) -> int:
    total = 0
    for name in ("verdict_logits.jsonl", "judgments.jsonl"):
        path = folder / name
        if path.exists():
            total += path.read_bytes().count(b"\n")
    return total


def _by_key(folder: Path) -> dict:
    out = {}
    for name in ("verdict_logits.jsonl", "judgments.jsonl"):
        for line in (folder / name).read_text().splitlines():
            row = json.loads(line)
            out[(name, row["id"], row["pass"])] = row
    return out


@pytest.mark.slow
def test_sigkill_at_a_random_point_then_resume_equals_an_uninterrupted_run(tmp_path):
    ref = subprocess.run(_command(tmp_path, "ref"), env=_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    ref_dir = tmp_path / "eval" / "ref"
    assert _rows(ref_dir) == N_ROWS

    kill_after = random.Random().randint(1, N_ROWS - 1)
    folder = tmp_path / "eval" / "killed"
    proc = subprocess.Popen(_command(tmp_path, "killed"), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while _rows(folder) < kill_after and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = _rows(folder)
    assert 0 < done_before < N_ROWS and not (folder / "metrics.json").exists()

    resumed = subprocess.run(_command(tmp_path, "killed"), env=_env(), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((ref_dir / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert b["results"] == a["results"], f"killed after {done_before} rows"
    reused = sum(r["reused_rows"] for r in b["runs"].values())
    assert reused >= done_before - 4  # at most the torn batch's rows are judged again
    assert sum(r["reused_rows"] + r["new_rows"] for r in b["runs"].values()) == N_ROWS
    ref_rows, got_rows = _by_key(ref_dir), _by_key(folder)
    assert got_rows.keys() == ref_rows.keys()
    assert all(got_rows[k] == ref_rows[k] for k in ref_rows)  # every row: same output, verdict, probabilities
    assert json.loads((folder / "placement.json").read_text()) == json.loads((ref_dir / "placement.json").read_text())
