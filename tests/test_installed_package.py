"""cj2 as a user installs it: a wheel built from this checkout, installed into a fresh virtual environment,
run from an empty folder outside the checkout through its console scripts and ``python -m`` forms.

The fresh environment gets its dependencies from this test's own environment (a ``.pth`` line: nothing is
downloaded), but cj2 itself only from the wheel: pip installs the wheel with ``--no-index`` and the same
constraints file, so a dependency the wheel declares and this environment cannot satisfy fails here, and a
file the wheel forgets (a config, the search-path plugin) fails the runs below.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from cj2.data.io import write_jsonl
from cj2.evaluation import build_embedded
from cj2.verdict import SWAP, render_verdict

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = ("train", "curate", "evaluate", "moj", "refine")
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("installed")
    # Build from a copy so the build leaves nothing (build/, egg-info) in the checkout.
    src = work / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "outputs", "build", "dist", "*.egg-info", "__pycache__", ".ruff_cache", "tests"
        ),
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            "dist",
            str(src),
        ],
        work,
        env,
    )
    (wheel,) = (work / "dist").glob("cj2-*.whl")

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], work, env)
    python = venv / "bin" / "python"
    purelib = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], work, env
        ).stdout.strip()
    )
    # The venv's bundled setuptools would shadow the newer one torch's metadata asks for.
    subprocess.run(
        [str(python), "-m", "pip", "uninstall", "-q", "-y", "setuptools"], env=env, capture_output=True
    )
    (purelib / "_cj2_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "-c",
            str(ROOT / "constraints" / "cpu.txt"),
            str(wheel),
        ],
        work,
        env,
    )
    user = work / "user"
    user.mkdir()
    env.update(
        HF_HUB_OFFLINE="1",
        WANDB_MODE="offline",
        TOKENIZERS_PARALLELISM="false",
        CJ2_CACHE_DIR=str(work / "cache"),
    )
    env.pop("CJ2_CONFIG_PATH", None)
    return {"wheel": wheel, "venv": venv, "python": python, "purelib": purelib, "user": user, "env": env}


def test_the_wheel_carries_every_config_and_the_search_path_plugin(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = sorted(
        n[len("cj2/conf/") :] for n in names if n.startswith("cj2/conf/") and n.endswith(".yaml")
    )
    in_checkout = sorted(
        str(p.relative_to(ROOT / "cj2" / "conf")) for p in (ROOT / "cj2" / "conf").rglob("*.yaml")
    )
    assert shipped == in_checkout and "train.yaml" in shipped
    assert "hydra_plugins/cj2_searchpath/__init__.py" in names
    assert not any(n.startswith(("tests/", "conf/")) for n in names)


def test_installed_cj2_is_imported_from_the_virtual_environment(installed):
    code = "import cj2, hydra_plugins.cj2_searchpath as p; print(cj2.__file__); print(p.__file__)"
    out = _run([str(installed["python"]), "-c", code], installed["user"], installed["env"]).stdout.split()
    assert all(Path(p).is_relative_to(installed["purelib"]) for p in out), out


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_composes_its_config_from_the_package(installed, entry):
    env, user = installed["env"], installed["user"]
    script = installed["venv"] / "bin" / f"cj2-{entry}"
    cmds = [[str(script), "--cfg", "job"], [str(installed["python"]), "-m", f"cj2.{entry}", "--cfg", "job"]]
    # both forms at once: two independent processes, each mostly import time
    procs = [
        subprocess.Popen(cmd, cwd=user, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for cmd in cmds
    ]
    for cmd, proc in zip(cmds, procs):
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{out[-2000:]}\n{err[-4000:]}"
        assert "seed:" in out or "judges:" in out, out[:500]
    assert not list(user.iterdir())  # --cfg job writes nothing


def test_train_from_an_empty_folder_with_a_user_experiment(installed, tmp_path):
    """Two steps of ``cj2-train`` on the tiny model; the experiment file lives in the user's own config folder
    (CJ2_CONFIG_PATH), the outputs in the current folder."""
    user_conf = tmp_path / "my_conf"
    (user_conf / "experiment").mkdir(parents=True)
    (user_conf / "experiment" / "two_steps.yaml").write_text(
        "# @package _global_\ntrainer:\n  max_steps: 2\nrun_name: two_steps\n"
    )
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {**installed["env"], "CJ2_CONFIG_PATH": str(user_conf)}
    _run(
        [
            str(installed["venv"] / "bin" / "cj2-train"),
            "+experiment=two_steps",
            "model=tiny",
            "logger=csv",
            "data.builtin.n_train=8",
            "data.builtin.n_val=4",
            "data.batch_size=4",
            "data.max_length=384",
            "trainer.precision=32-true",
            "trainer.enable_progress_bar=false",
            "callbacks.generated.n_items=2",
            "callbacks.generated.n_unseen_items=2",
            "callbacks.generated.max_new_tokens=8",
            "callbacks.generated.untrained_baseline=false",
            "callbacks.verdict_logits.n_queries=2",
        ],
        cwd,
        env,
    )
    run = cwd / "outputs" / "runs" / "two_steps"
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 2
    for name in ("last.ckpt", "config.yaml", "hf/config.json", "generations_latest.jsonl"):
        assert (run / name).exists(), name
    # The same experiment through Hydra's own search path, with the python -m form.
    env.pop("CJ2_CONFIG_PATH")
    out = _run(
        [
            str(installed["python"]),
            "-m",
            "cj2.train",
            f"hydra.searchpath=[file://{user_conf}]",
            "+experiment=two_steps",
            "--cfg",
            "job",
        ],
        cwd,
        env,
    ).stdout
    assert "max_steps: 2" in out and "run_name: two_steps" in out
    _assert_nothing_written_into(installed["purelib"])


def test_evaluate_a_predictions_file_from_an_empty_folder(installed, tmp_path):
    items = build_embedded(n_queries=2, scenarios=["arithmetic"]).items
    rows = []
    for it in items:
        for order in ("AB", "BA"):
            gold = it.label if order == "AB" else SWAP[it.label]
            rows.append(
                {"id": it.id, "order": order, "output": f"Because.\n{{{render_verdict(gold, 'cj2_choice')}}}"}
            )
    cwd = tmp_path / "work"
    cwd.mkdir()
    write_jsonl(cwd / "predictions.jsonl", rows)
    _run(
        [
            str(installed["venv"] / "bin" / "cj2-evaluate"),
            "judge=predictions",
            "judge.path=predictions.jsonl",
            "benchmark.n_queries=2",
            "benchmark.scenarios=[arithmetic]",
            "logger.wandb.enabled=false",
            "evaluate.bootstrap=50",
            "evaluate.progress=false",
            "run_name=preds",
        ],
        cwd,
        installed["env"],
    )
    out = cwd / "outputs" / "eval" / "preds"
    metrics = json.loads((out / "metrics.json").read_text())
    assert (out / "report.md").exists() and (out / "judgments.jsonl").exists()
    assert json.dumps(metrics).count('"accuracy": 1.0') >= 1, metrics
    _assert_nothing_written_into(installed["purelib"])


def test_curate_the_simulated_teacher_from_an_empty_folder(installed, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    _run(
        [
            str(installed["venv"] / "bin" / "cj2-curate"),
            "catalog.builtin.n=4",
            "rejection.m=2",
            "logger.wandb.enabled=false",
            "decontamination.enabled=false",
            "run_name=cur",
        ],
        cwd,
        installed["env"],
    )
    run = cwd / "outputs" / "runs" / "cur"
    stats = json.loads((run / "stats.json").read_text())
    assert stats["stages"]["rft"]["prompts"] == 4
    assert (run / "train.jsonl").read_text().strip()
    _assert_nothing_written_into(installed["purelib"])


def _assert_nothing_written_into(purelib: Path) -> None:
    written = [
        p
        for p in (purelib / "cj2").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".yaml", ".typed")
    ]
    assert not written, written
    assert not (purelib / "outputs").exists()
