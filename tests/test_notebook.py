"""notebooks/analysis.ipynb runs end to end on a tiny result set, so it never rots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "analysis.ipynb"


def _tiny_results(root: Path) -> None:
    sweep = root / "sweeps" / "margin_ablation"
    for loss, base in (("sft", 0.55), ("margin", 0.62)):
        for m in (1, 4):
            for seed in (0, 1):
                run = sweep / f"loss={loss},M={m},seed={seed}"
                run.mkdir(parents=True)
                acc = base + 0.01 * m + 0.005 * seed
                (run / "metrics.json").write_text(
                    json.dumps(
                        {
                            "loss": loss,
                            "M": m,
                            "seed": seed,
                            "val/judge_acc": acc,
                            "val/judge_acc_parsed": acc + 0.02,
                            "val/verdict_logit_acc": acc - 0.03,
                            "val/jbv2_final": 100 * acc - 10,
                            "val/swap_consistency": 0.7,
                            "val/parse_rate": 0.9,
                            "wall_time_s": 61.0,
                        }
                    )
                )
    (sweep / "comparison.csv").write_text('loss,M,seeds,val/judge_acc\nmargin,1,"0,1",0.6325 ± 0.0035\n')
    ev = root / "eval" / "embedded" / "smollm2_135m-0123456789"
    ev.mkdir(parents=True)
    (ev / "metrics.json").write_text(
        json.dumps(
            {
                "benchmark": "embedded",
                "judge": "smollm2_135m",
                "results": {
                    "logits": {
                        "n": 320,
                        "accuracy": 0.52,
                        "accuracy_parsed": 0.52,
                        "parse_rate": 1.0,
                        "swap/consistency": 0.3,
                        "swap/position_bias": 0.6,
                        "jbv2/final": 48.1,
                        "accuracy/arithmetic": 0.5,
                        "accuracy/dates": 0.54,
                    },
                    "generate": {
                        "n": 100,
                        "accuracy": 0.2,
                        "accuracy_parsed": None,
                        "parse_rate": 0.1,
                        "accuracy/arithmetic": 0.18,
                        "accuracy/dates": 0.22,
                    },
                },
                "runs": {"logits": {"wall_s": 40.0}, "generate": {"wall_s": 300.0}},
            }
        )
    )
    (root / "broken").mkdir()
    (root / "broken" / "metrics.json").write_text("{not json")  # skipped with a message, not a crash


def test_analysis_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    _tiny_results(tmp_path / "results")
    monkeypatch.setenv("CJ2_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("CJ2_FIGURES", str(tmp_path / "figures"))
    monkeypatch.delenv("CJ2_WANDB_PROJECT", raising=False)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    text = "\n".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    assert "8 training runs, 1 evaluations" in text
    assert "skipping" in text and "CJ2_WANDB_PROJECT not set" in text
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        "ablation.png",
        "domains.png",
        "evaluations.png",
    ]
