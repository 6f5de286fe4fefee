"""The sweep table's paired comparison: each arm against sft at the same M and seed, over the same items."""

from __future__ import annotations

import json

import pytest

from cj2.comparison import compare, paired_difference


def _write_run(root, name, loss, m, seed, correct):
    d = root / name
    d.mkdir(parents=True)
    (d / "metrics.json").write_text(
        json.dumps({"loss": loss, "M": m, "seed": seed, "val/judge_acc": sum(correct) / len(correct)})
    )
    rows = [
        {
            "id": f"q{i // 2}",
            "order": "AB" if i % 2 == 0 else "BA",
            "correct": bool(c),
            "heldout_family": False,
        }
        for i, c in enumerate(correct)
    ]
    rows.append({"id": "unseen", "order": "AB", "correct": True, "heldout_family": True})  # never paired
    (d / "generations_latest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_paired_difference_is_exact_and_resamples_items():
    base = {(f"q{i}", o): 0.0 for i in range(20) for o in ("AB", "BA")}
    arm = {k: 1.0 if int(k[0][1:]) < 10 else 0.0 for k in base}  # right on half the items, both orders
    d, lo, hi, n = paired_difference(arm, base, seed=0)
    assert d == pytest.approx(0.5) and n == 20
    assert 0.25 < lo < 0.5 < hi < 0.75
    same = paired_difference(base, base)
    assert same[:3] == (0.0, 0.0, 0.0)


def test_comparison_table_has_the_paired_column(tmp_path):
    good, bad = [1, 1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0]
    _write_run(tmp_path, "a", "sft", 1, 0, bad)
    _write_run(tmp_path, "b", "margin", 1, 0, good)
    table = compare(tmp_path, write=True)
    assert "Δ judge_acc vs sft" in table
    margin_row = next(line for line in table.splitlines() if line.startswith("| margin"))
    assert "s0: +0.500 [" in margin_row
    assert (tmp_path / "comparison.md").exists()


def test_faithfulness_columns_filter_arms_and_the_per_family_table(tmp_path):
    for name, filt, seed, spur in (
        ("o0", "outcome", 0, 0.3),
        ("o1", "outcome", 1, 0.1),
        ("f0", "faithful", 0, 0.0),
    ):
        d = tmp_path / name
        d.mkdir()
        metrics = {"loss": "margin", "M": 4, "filter": filt, "rounds": 2, "seed": seed}
        metrics |= {"val/spurious_rate": spur, "val/spurious_rate/compare": spur, "val/truth_acc": 0.9}
        (d / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "plain").mkdir()  # a run without a computed truth: blank, never 0
    (tmp_path / "plain" / "metrics.json").write_text(json.dumps({"loss": "sft", "seed": 0}))
    table = compare(tmp_path, write=False)
    lines = table.splitlines()
    assert lines[0].startswith("| loss | M | filter | rounds | seeds |") and "val/spurious_rate" in lines[0]
    outcome = next(ln for ln in lines if ln.startswith("| margin | 4 | outcome | 2 | 0,1 |"))
    assert "0.2 ± 0.14" in outcome
    assert next(ln for ln in lines if ln.startswith("| margin | 4 | faithful | 2 | 0 |"))
    assert "## val/spurious_rate per family" in table
    fam = table.split("## val/spurious_rate per family")[1].splitlines()
    assert fam[2] == "| loss | M | filter | rounds | compare |"
    assert "| margin | 4 | outcome | 2 | 0.2 ± 0.14 |" in fam
    assert "| sft |  |  |  |  |" in fam


def test_the_paired_baseline_is_configurable(tmp_path):
    """On-policy arms against offline margin (no rounds), paired on the seed only (their M differ)."""
    good, bad = [1, 1, 1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0]
    _write_run(tmp_path, "offline", "margin", None, 0, bad)
    _write_run(tmp_path, "rounds", "margin", 4, 0, good)
    metrics = json.loads((tmp_path / "rounds" / "metrics.json").read_text())
    (tmp_path / "rounds" / "metrics.json").write_text(
        json.dumps({**metrics, "rounds": 3, "filter": "outcome"})
    )
    table = compare(tmp_path, write=False, baseline={"loss": "margin", "rounds": None}, pair_on=["seed"])
    assert "Δ judge_acc vs loss=margin,rounds=-, same seed" in table
    row = next(line for line in table.splitlines() if line.startswith("| margin | 4 |"))
    assert "s0: +0.500 [" in row


def test_arms_that_differ_only_per_question_are_two_rows(tmp_path):
    """semi_faithful and semi_faithful_gold share loss, M, filter and rounds; they were once one row with
    seeds 0,0 (the table filed arms by those keys only). The arm's name and pair_orders/fallback file them."""
    from omegaconf import OmegaConf

    from cj2.comparison import arm_keys

    base = {"loss": {"name": "margin"}, "seed": 0, "data": {"rejection": {"m": 4, "filter": "faithful"}}}
    plain = arm_keys(OmegaConf.create({**base, "arm": "semi_faithful"}))
    gold_cfg = OmegaConf.merge(
        base, {"arm": "semi_faithful_gold", "data": {"rejection": {"pair_orders": True, "fallback": "gold"}}}
    )
    gold = arm_keys(gold_cfg)
    assert "pair_orders" not in plain and "fallback" not in plain  # only where set
    assert (gold["arm"], gold["pair_orders"], gold["fallback"]) == ("semi_faithful_gold", True, "gold")
    for name, keys in (("p", plain), ("g", gold)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({**keys, "val/judge_acc": 0.5}))
    lines = compare(tmp_path, write=False).splitlines()
    assert lines[0].startswith("| arm | loss | M | filter | pair_orders | fallback | seeds |")
    assert "| semi_faithful | margin | 4 | faithful |  |  | 0 |" in "\n".join(lines)
    assert "| semi_faithful_gold | margin | 4 | faithful | True | gold | 0 |" in "\n".join(lines)
