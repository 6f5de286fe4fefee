"""Sweeps through Hydra's launchers: a failed arm is a row of the comparison table, never silently missing;
the other arms still run; the table is written once, by the launching process; the sweep exits non-zero."""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cj2.comparison import FAILED_FILE, ComparisonCallback, SweepArmsFailed, collect_failures, compare
from cj2.testing import FAIL_ARM_ENV
from tests.test_train import CONF, SWEEP_RUN, _run, cfg_for


def _arm(root, name, *, metrics=None, failed=None, hydra_cfg=None):
    d = root / name
    d.mkdir(parents=True)
    if metrics is not None:
        (d / "metrics.json").write_text(json.dumps(metrics))
    if failed is not None:
        (d / FAILED_FILE).write_text(json.dumps(failed))
    if hydra_cfg is not None:
        (d / ".hydra").mkdir()
        (d / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(hydra_cfg)))
    return d


def _rows(md: str) -> dict[str, str]:
    """comparison.md's rows by their loss."""
    return {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ") and "---" not in ln}


def test_table_lists_failed_and_killed_runs(tmp_path):
    hydra_of = {"loss": {"name": "x"}, "seed": 0}
    _arm(tmp_path, "sft", metrics={"loss": "sft", "seed": 0, "val/judge_acc": 0.5}, hydra_cfg=hydra_of)
    _arm(tmp_path, "margin0", metrics={"loss": "margin", "seed": 0, "val/judge_acc": 0.75})
    _arm(
        tmp_path, "margin1", failed={"loss": "margin", "seed": 1, "error": "ValueError", "message": "lr<0\nx"}
    )
    _arm(tmp_path, "dpo", hydra_cfg={"loss": {"name": "dpo"}, "seed": 0, "data": {"rejection": {"m": 4}}})
    # a failed.json left next to a later metrics.json (a rerun that succeeded) is not a failure
    _arm(tmp_path, "temperature", metrics={"loss": "temperature", "seed": 0}, failed={"error": "old"})

    assert sorted(f["loss"] for f in collect_failures(tmp_path)) == ["dpo", "margin"]
    compare(tmp_path)
    md = (tmp_path / "comparison.md").read_text()
    assert md.startswith("# Sweep comparison (3 runs, 2 failed)")
    rows = _rows(md)
    assert rows["loss"].rstrip(" |").endswith("failed")
    assert "0.75" in rows["margin"] and "seed=1: ValueError: lr<0 |" in rows["margin"]  # the seed that ran
    assert "| 4 |" in rows["dpo"] and "seed=0: no result: neither metrics.json nor failed.json" in rows["dpo"]
    assert rows["sft"].rstrip().endswith("|  |") and "0.5" in rows["sft"]
    csv = (tmp_path / "comparison.csv").read_text().splitlines()
    assert csv[0].endswith(",failed") and len(csv) == 5

    class Cfg:
        hydra = OmegaConf.create({"sweep": {"dir": str(tmp_path)}})

    with pytest.raises(SweepArmsFailed, match="2 run"):
        ComparisonCallback().on_multirun_end(Cfg())
    ComparisonCallback(fail_on_failed_arms=False).on_multirun_end(Cfg())


def test_a_table_without_failures_has_no_failed_column(tmp_path):
    _arm(tmp_path, "a", metrics={"loss": "sft", "seed": 0, "val/judge_acc": 0.5})
    assert "failed" not in compare(tmp_path) and "failed" not in (tmp_path / "comparison.md").read_text()


def test_training_that_raises_writes_failed_json(tmp_path, monkeypatch):
    from cj2.train import train

    monkeypatch.setenv(FAIL_ARM_ENV, "loss.name=sft;seed=0:raise")
    cfg = cfg_for(tmp_path, "loss=margin", "data.rejection.m=4")
    with pytest.raises(RuntimeError, match="seed=0"):
        train(cfg)
    record = json.loads((tmp_path / FAILED_FILE).read_text())
    assert record["error"] == "RuntimeError" and "test failure of the arm with seed=0" in record["message"]
    assert (record["loss"], record["seed"], record["M"], record["by"]) == ("margin", 0, 4, "cj2.train")
    assert "Traceback" in record["details"]
    assert not (tmp_path / "metrics.json").exists()


def _compose_hydra(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=list(overrides), return_hydra_config=True)


def test_launcher_configs_have_the_keys_users_set():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    slurm = _compose_hydra("hydra/launcher=slurm").hydra.launcher
    for key in ("partition", "account", "qos", "timeout_min", "nodes", "gpus_per_node", "tasks_per_node"):
        assert key in slurm, key
    assert slurm.array_parallelism >= 1 and OmegaConf.is_dict(slurm.additional_parameters)
    local = _compose_hydra("hydra/launcher=local").hydra.launcher
    assert local._target_ == "hydra_plugins.cj2_submitit.LocalLauncher"
    assert (local.gpus_per_node, local.nodes, local.array_parallelism) == (0, 1, 1)
    assert local.timeout_min > 0 and local.cpus_per_task >= 1


@pytest.mark.slow
def test_submitit_local_sweep_reports_failed_and_killed_arms(tmp_path, monkeypatch):
    """hydra/launcher=local: each arm in its own process and folder; one arm raises, one is SIGKILLed; the
    good arm's row and both failures are in the table, written once by the launching process."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setenv(FAIL_ARM_ENV, "loss.name=dpo:raise;loss.name=temperature:kill")  # _run passes it on
    args = ["-m", *SWEEP_RUN, "loss=sft,dpo,temperature", "run_name=sw", f"output_root={tmp_path}"]
    local = ["hydra/launcher=local", "hydra.launcher.array_parallelism=2", "hydra.launcher.cpus_per_task=1"]
    r = _run([*args, *local], cwd=tmp_path)
    sweep = tmp_path / "sweeps" / "sw"
    assert r.returncode != 0 and "run(s) of the sweep failed" in r.stderr, r.stderr[-3000:]
    assert r.stdout.count("Comparison of") == 1  # once, in the launching process
    arm = {p.name.split(",")[0].removeprefix("loss="): p for p in sweep.glob("loss=*")}
    assert sorted(arm) == ["dpo", "sft", "temperature"]
    jobs = [p for p in (sweep / ".submitit").iterdir() if p.is_dir() and p.name.isdigit()]
    assert len(jobs) == 3  # one process (a local job's id is its pid) per arm
    job_logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_log.out"))
    assert "Comparison of" not in job_logs
    assert json.loads((arm["sft"] / "metrics.json").read_text())["global_step"] == 2
    rows = _rows((sweep / "comparison.md").read_text())
    assert "RuntimeError: CJ2_TEST_FAIL_ARM: test failure of the arm with loss.name=dpo" in rows["dpo"]
    killed = json.loads((arm["temperature"] / FAILED_FILE).read_text())
    assert killed["by"] == "submitit local" and killed["loss"] == "temperature"
    assert "seed=0: UncompletedJobError" in rows["temperature"] or "FailedJobError" in rows["temperature"]
    assert rows["sft"].rstrip().endswith("|  |") and "| 0 |" in rows["sft"]  # a result, nothing failed


@pytest.mark.slow
def test_basic_launcher_sweep_goes_on_past_a_failed_arm(tmp_path, monkeypatch):
    """The default launcher behaves the same: the failing arm does not stop the sweep, the table is written
    with its failed row, and the sweep exits non-zero."""
    monkeypatch.setenv(FAIL_ARM_ENV, "loss.name=margin")
    r = _run(["-m", *SWEEP_RUN, "loss=margin,sft", "run_name=sw", f"output_root={tmp_path}"], cwd=tmp_path)
    sweep = tmp_path / "sweeps" / "sw"
    assert r.returncode != 0 and "run(s) of the sweep failed" in r.stderr, r.stderr[-3000:]
    assert r.stdout.count("Comparison of") == 1
    assert len(list(sweep.glob("loss=sft*/metrics.json"))) == 1  # ran after the failed arm
    rows = _rows((sweep / "comparison.md").read_text())
    assert "seed=0: RuntimeError: CJ2_TEST_FAIL_ARM" in rows["margin"] and "| 0 |" in rows["sft"]
