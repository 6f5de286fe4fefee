"""Kill and resume, proven: ``python -m cj2.evaluate`` killed with SIGKILL at a random row and run again
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
from pathlib import Path

import pytest

from cj2.evaluation import build_embedded
from cj2.testing import ENV

ARGS = [
    "judge.name_or_path=tiny",
    "judge.max_new_tokens=8",
    "judge.batch_size=4",
    "benchmark.n_queries=2",
    "benchmark.scenarios=[arithmetic]",
    "logger.wandb.enabled=false",
    "evaluate.max_generated=null",
    "evaluate.time_budget_s=null",
    "evaluate.bootstrap=100",
    "evaluate.progress=false",
]
N_ITEMS = len(build_embedded(n_queries=2, scenarios=["arithmetic"]))
N_ROWS = N_ITEMS * 2 * 2  # items x 2 passes x 2 modes
BATCH = 4  # judge.batch_size: rows per write
assert N_ITEMS % BATCH == 0  # so every write holds BATCH rows


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

    # The child kills itself (cj2.testing) right after the durable write that brings it to >= kill_after rows:
    # no polling, so the kill can neither miss the end of a short run nor land past the point chosen. Rows are
    # written BATCH rows at a time, so any kill_after <= N_ROWS - BATCH lands before the last write.
    seed = random.randrange(2**32)
    kill_after = random.Random(seed).randint(1, N_ROWS - BATCH)
    why = f"kill_after={kill_after} (seed {seed})"
    folder = tmp_path / "eval" / "killed"
    killed = subprocess.run(
        _command(tmp_path, "killed"),
        env={**_env(), ENV: f"evaluate.rows:{kill_after}"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, (why, killed.stderr[-3000:])
    done_before = _rows(folder)
    assert done_before == -(-kill_after // BATCH) * BATCH and not (folder / "metrics.json").exists(), why

    resumed = subprocess.run(
        _command(tmp_path, "killed"), env=_env(), capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((ref_dir / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert b["results"] == a["results"], why
    reused = sum(r["reused_rows"] for r in b["runs"].values())
    assert reused == done_before, why  # killed after a durable write: every row on disk is reused
    assert sum(r["reused_rows"] + r["new_rows"] for r in b["runs"].values()) == N_ROWS
    ref_rows, got_rows = _by_key(ref_dir), _by_key(folder)
    assert got_rows.keys() == ref_rows.keys()
    assert all(got_rows[k] == ref_rows[k] for k in ref_rows)  # every row: same output, verdict, probabilities
    assert json.loads((folder / "placement.json").read_text()) == json.loads(
        (ref_dir / "placement.json").read_text()
    )
