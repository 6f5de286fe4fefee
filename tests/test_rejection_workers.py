"""Rejection sampling over several workers: each draws its share of the shards, one merge run writes the
data; the result is byte-identical to one worker drawing everything, also when a worker was killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from cj2.curation.rejection import parse_worker
from cj2.runtime import register_resolvers
from cj2.testing import ENV

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "cj2" / "conf"
register_resolvers()

OVERRIDES = [
    "catalog.builtin.n=24",
    "rejection.m=2",
    "rejection.shard_size=3",  # 8 shards of the 24 prompts: workers 0, 1, 2 of 3 draw 3, 3 and 2
    "rejection.progress=false",
    "logger.wandb.enabled=false",
    "decontamination.enabled=false",
]


def test_parse_worker():
    assert parse_worker(None) is None and parse_worker("null") is None
    assert parse_worker("0/3") == (0, 3) and parse_worker(" 2/3 ") == (2, 3)
    slurm = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert parse_worker("slurm", slurm) == (2, 4)
    assert parse_worker("slurm", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MAX": "3"}) == (3, 4)
    assert parse_worker("rank", {"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    for bad, match in (
        ("3/3", "does not exist"),
        ("1/0", "does not exist"),
        ("a/3", "expected 'i/N'"),
        ("2", "expected 'i/N'"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_worker(bad)
    with pytest.raises(ValueError, match="outside a SLURM job array"):
        parse_worker("slurm", {})
    with pytest.raises(ValueError, match="RANK/WORLD_SIZE"):
        parse_worker("rank", {"RANK": "0"})


def _curate(root: Path, run_name: str, cache: Path, *extra: str) -> dict:
    from cj2.curate import curate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            "curate",
            [*OVERRIDES, f"output_root={root}", f"run_name={run_name}", f"cache_dir={cache}", *extra],
        )
    return curate(cfg)


def _without_bookkeeping(obj):
    """stats.json without what differs by design between two runs: wall times, cache and output paths."""
    if isinstance(obj, dict):
        return {k: _without_bookkeeping(v) for k, v in obj.items() if k not in ("wall_s", "cache", "files")}
    if isinstance(obj, list):
        return [_without_bookkeeping(v) for v in obj]
    return obj


@pytest.mark.slow
def test_three_workers_one_killed_then_merged_equal_one_worker(tmp_path):
    cache = tmp_path / "cache"
    # Worker 1 kills itself after writing (not listing) its first shard: it must draw that shard again.
    env = {**os.environ, "PYTHONPATH": str(ROOT), ENV: "rejection.shard_written:1"}
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "cj2.curate",
            *OVERRIDES,
            f"output_root={tmp_path}",
            "run_name=w1",
            f"cache_dir={cache}",
            "rejection.worker=1/3",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (folder,) = (cache / "rejection").iterdir()
    assert len(list(folder.glob("shards/*.jsonl"))) == 1 and not (folder / "manifest.json").exists()

    shares = {}
    for i in (0, 2, 1):  # worker 1 restarted last
        stats = _curate(tmp_path, f"w{i}", cache, f"rejection.worker={i}/3")
        shares[i] = stats["stages"]["rft"]
        assert not (tmp_path / "runs" / f"w{i}" / "train.jsonl").exists()  # workers write no data
        assert (tmp_path / "runs" / f"w{i}" / f"worker_{i}-of-3.json").exists()
    assert [shares[i]["prompts"] for i in range(3)] == [9, 9, 6]
    assert [shares[i]["shards_drawn"] for i in range(3)] == [3, 3, 2]  # the killed shard drawn again
    listed = {
        i: sorted(json.loads((folder / "workers" / f"{i:04d}-of-0003.json").read_text())["shards"], key=int)
        for i in range(3)
    }
    assert listed == {0: ["0", "3", "6"], 1: ["1", "4", "7"], 2: ["2", "5"]}

    merged = _curate(tmp_path, "merged", cache)
    assert merged["stages"]["rft"]["cache"]["shards_drawn"] == 0  # every shard came from a worker
    single = _curate(tmp_path, "single", tmp_path / "cache_single")
    assert single["stages"]["rft"]["cache"]["shards_drawn"] == 8

    a, b = tmp_path / "runs" / "merged", tmp_path / "runs" / "single"
    files = sorted(str(p.relative_to(b)) for p in b.rglob("*.jsonl"))
    assert "train.jsonl" in files and "rft/train.jsonl" in files
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert _without_bookkeeping(json.loads((a / "stats.json").read_text())) == _without_bookkeeping(
        json.loads((b / "stats.json").read_text())
    )
    single_folder = next((tmp_path / "cache_single" / "rejection").iterdir())
    assert single_folder.name == folder.name  # the same cache key
    for shard in sorted(single_folder.glob("shards/*.jsonl")):
        assert (folder / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name
