"""Evaluation (cj2.evaluation, python -m cj2.evaluate): placement, the embedded benchmark, the result
store, each benchmark's scoring through the run loop with recorded predictions, resume and the configs.

Expected numbers are worked out by hand in the comments.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from cj2.data.io import DataError
from cj2.evaluation import build_embedded
from cj2.evaluation.benchmarks import load_benchmark
from cj2.evaluation.placement import (
    balanced_placement,
    compute_placement,
    generate_balanced_list,
    opencompass_placement,
)
from cj2.evaluation.runner import eval_dir, fingerprint, generated_subset, run_evaluation
from cj2.evaluation.store import DIGEST, ResultStore, row_digest
from cj2.verdict import render_verdict

CONF = Path(__file__).resolve().parents[1] / "cj2" / "conf"
FLIP = {"A": "B", "B": "A", "tie": "tie"}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def perfect_predictions(items, path: Path, fmt: str, wrong: set[str] = frozenset()) -> Path:
    """A predictions file whose verdicts are right in both orders (wrong for the ids in ``wrong``)."""
    rows = []
    for it in items:
        for order in ("AB", "BA"):
            gold = it.label if order == "AB" else FLIP[it.label]
            verdict = FLIP[gold] if it.id in wrong else gold
            rows.append(
                {"id": it.id, "order": order, "output": f"Reasoning.\n{{{render_verdict(verdict, fmt)}}}"}
            )
    return write_jsonl(path, rows)


def config(benchmark: dict, judge: dict, **evaluate) -> dict:
    return {
        "judge": judge,
        "benchmark": benchmark,
        "placement": evaluate.pop("placement", "balanced"),
        "seed": 0,
        "evaluate": {
            "mode": "auto",
            "swap": True,
            "style_probe": False,
            "max_generated": "auto",
            "time_budget_s": "auto",
            "bootstrap": 50,
            "progress": False,
            **evaluate,
        },
    }


# --------------------------------------------------------------------------------------------- placement
@pytest.mark.parametrize("n", [0, 1, 2, 7, 10, 101])
def test_balanced_placement_swaps_exactly_half(n):
    ids = [f"item-{i}" for i in range(n)]
    placement = balanced_placement(ids, seed=3)
    assert set(placement) == set(ids)
    assert sum(placement.values()) == n // 2


def test_balanced_placement_is_a_pure_function_of_seed_and_ids():
    ids = [f"q{i}" for i in range(40)]
    state = random.getstate()
    first = balanced_placement(ids, seed=0)
    assert random.getstate() == state  # the global generator is left alone
    shuffled = list(ids)
    random.Random(1).shuffle(shuffled)
    assert balanced_placement(shuffled, seed=0) == first  # file order does not matter
    assert balanced_placement(ids, seed=1) != first  # 40 choose 20 placements: a collision would be a bug
    with pytest.raises(ValueError, match="occurs twice"):
        balanced_placement(["a", "b", "a"], seed=0)


def test_placement_is_fixed_before_the_cap(tmp_path):
    """A capped run places its items exactly as the full run does."""
    bench = {"name": "embedded", "n_queries": 2, "scenarios": ["arithmetic"]}
    items = load_benchmark(bench).items
    preds = perfect_predictions(items, tmp_path / "p.jsonl", "cj2_choice")
    judge = {"backend": "predictions", "path": str(preds)}
    run_evaluation(config(bench, judge), tmp_path / "full")
    run_evaluation(config({**bench, "limit": 5}, judge), tmp_path / "capped")
    full = json.loads((tmp_path / "full" / "placement.json").read_text())["order"]
    capped_rows = [json.loads(x) for x in (tmp_path / "capped" / "judgments.jsonl").read_text().splitlines()]
    assert {r["id"] for r in capped_rows} == {it.id for it in items[:5]}
    for r in capped_rows:
        expected = full[r["id"]] if r["pass"] == "headline" else {"AB": "BA", "BA": "AB"}[full[r["id"]]]
        assert r["order"] == expected


def test_generate_balanced_list_matches_opencompass_recipe():
    """OpenCompass: random.seed(0); [0]*50 + [1]*50; random.shuffle (plus random.choice for odd lengths)."""
    state = random.getstate()
    try:
        random.seed(0)
        expected = [0] * 50 + [1] * 50
        random.shuffle(expected)
        random.seed(0)
        odd = [0] * 3 + [1] * 3
        odd.append(random.choice([0, 1]))
        random.shuffle(odd)
    finally:
        random.setstate(state)
    assert generate_balanced_list(100) == expected
    assert sum(expected) == 50
    assert generate_balanced_list(7) == odd


def _jbv2_rows(n: int, models=("m1", "m2", "m3")) -> list[dict]:
    rows = []
    for i in range(n):
        cand = models[i % len(models)]
        winner = cand if i % 3 else "gpt-4o-mini-2024-07-18"
        rows.append(
            {
                "prompt": f"question {i}",
                "base_model_response": {
                    "response": f"reference answer {i}",
                    "model_name": "gpt-4o-mini-2024-07-18",
                },
                "models_response": {"response": f"{cand} answer {i}", "model_name": cand},
                "gold": {"category": "Knowledge", "lan": "en" if i % 2 else "cn", "r1_gt": winner},
            }
        )
    return rows


def test_opencompass_placement_tiles_the_balanced_list_over_each_file(tmp_path):
    folder = tmp_path / "jbv2"
    folder.mkdir()
    (folder / "Knowledge.json").write_text(json.dumps(_jbv2_rows(130)))
    (folder / "safe.json").write_text(json.dumps(_jbv2_rows(20)))
    bench = load_benchmark({"name": "judgerbenchv2", "path": str(folder)})
    placement = opencompass_placement(bench.items)
    balanced = generate_balanced_list(100)
    for it in bench.items:
        # 0 -> GPT-4o-mini (response A as read) stays in A; 1 -> the candidate is A
        assert placement[it.id] == (balanced[it.meta["index"] % 100] == 1)
    assert compute_placement(bench.items, "opencompass", seed=5) == placement  # no seed involved


# ----------------------------------------------------------------------------------------- embedded bench
def test_embedded_benchmark_shape_and_ground_truth():
    from cj2.metrics import JudgerBenchV2Score

    emb = build_embedded(n_queries=10)
    assert len(emb.models) >= 6 and len(emb.scenarios) >= 3
    assert len(emb) == len(emb.scenarios) * 10 * len(emb.models)
    assert len({it.id for it in emb.items}) == len(emb)
    # wins = round(skill * n_queries): 9, 8, 6, 5, 3, 2, all different
    for wins in emb.gt_wins.values():
        assert wins == {m: round(s * 10) for m, s in emb.models.items()}
        assert len(set(wins.values())) == len(wins)
    # the labels imply exactly those win counts (the reference wins the other pairs)
    metric = JudgerBenchV2Score(emb.reference_model)
    metric.update(
        [it.domain for it in emb.items],
        [it.meta["model_a"] for it in emb.items],
        [it.meta["model_b"] for it in emb.items],
        [it.label for it in emb.items],
        [it.label for it in emb.items],
    )
    tables = metric.win_tables()
    assert {s: {m: gt for m, (gt, _) in t.items()} for s, t in tables.items()} == emb.gt_wins
    # one response is right: the correct value closes exactly one of them
    for it in emb.items[:40]:
        truth = load_truth(it)
        right = it.response_b if it.label == "B" else it.response_a
        assert truth in right
    assert build_embedded(n_queries=10).items == emb.items  # a pure function


def load_truth(item) -> str:
    from cj2.data.tasks import generate_items

    scenario, q = item.meta["scenario"], item.meta["query"]
    return generate_items(q + 1, split="test", families=[scenario])[q].meta["truth"]


def test_embedded_benchmark_rejects_bad_settings():
    with pytest.raises(ValueError, match="at least two"):
        build_embedded(models={"solo": 0.5})
    with pytest.raises(ValueError, match="not a probability"):
        build_embedded(models={"a": 0.5, "b": 1.5})
    with pytest.raises(ValueError, match="not task families"):
        build_embedded(scenarios=["percentages"])  # a validation-only family


# ------------------------------------------------------------------------------------------------ store
def stored(*rows: dict) -> bytes:
    """Lines as the store writes them: each row with its digest."""
    return b"".join(json.dumps({**r, DIGEST: row_digest(r)}).encode() + b"\n" for r in rows)


def test_store_drops_a_torn_last_line_and_keeps_the_rest(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        stored({"id": "a", "pass": "headline"}, {"id": "b", "pass": "headline"}) + b'{"id": "c", "pa'
    )
    store = ResultStore(path, lambda r: (r["id"], r["pass"]))
    assert set(store.rows) == {("a", "headline"), ("b", "headline")}
    assert store.recovered_bytes == len(b'{"id": "c", "pa')
    assert store.append([{"id": "c", "pass": "headline"}, {"id": "a", "pass": "headline"}]) == 1
    lines = path.read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a", "b", "c"]  # no line glued to the torn one


def test_store_keeps_a_complete_last_line_without_newline(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(stored({"id": "a", "pass": "swap"})[:-1])
    store = ResultStore(path, lambda r: (r["id"], r["pass"]))
    assert ("a", "swap") in store and store.recovered_bytes == 0
    store.append([{"id": "b", "pass": "swap"}])
    assert len(path.read_text().splitlines()) == 2


def test_store_refuses_a_bad_line_in_the_middle(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(
        stored({"id": "a", "pass": "headline"}) + b"not json\n" + stored({"id": "b", "pass": "headline"})
    )
    with pytest.raises(DataError, match=r"rows.jsonl:2"):
        ResultStore(path, lambda r: (r["id"], r["pass"]))


# ------------------------------------------------------------------------- scoring through the run loop
def _judgebench_file(path: Path) -> Path:
    labels = ["A>B", "B>A", "A>B", "B>A"]
    return write_jsonl(
        path,
        [
            {
                "pair_id": f"p{i}",
                "source": "mmlu-pro-math" if i < 2 else "livecodebench",
                "question": f"q{i}",
                "response_A": f"a{i}",
                "response_B": f"b{i}",
                "label": lab,
            }
            for i, lab in enumerate(labels)
        ],
    )


def test_hand_computed_metrics_on_judgebench(tmp_path):
    """Labels A, B, A, B; placement fixed (headline order AB). Verdicts (as shown):
    p0: AB A, BA B  -> right, consistent             p1: AB A, BA A -> wrong, prefers position A
    p2: AB unparsed, BA B (= A as read)             p3: AB B, BA A (= B as read) -> right, consistent
    strict accuracy 2/4, parsed 2/3, parse rate 3/4; consistency 2/4; prefer-first 1/4, prefer-second 0;
    double order (+1 toward the side picked per order): p0 +2 -> A ok; p1 +1 - 1 = 0 -> not B; p2 +1 -> A ok;
    p3 -2 -> B ok: 3/4."""
    data = _judgebench_file(tmp_path / "jb.jsonl")
    v = lambda lab: render_verdict(lab, "cj2_choice")  # noqa: E731
    preds = write_jsonl(
        tmp_path / "preds.jsonl",
        [
            {"id": "p0", "order": "AB", "output": v("A")},
            {"id": "p0", "order": "BA", "output": v("B")},
            {"id": "p1", "order": "AB", "output": v("A")},
            {"id": "p1", "order": "BA", "output": v("A")},
            {"id": "p2", "order": "AB", "output": "I cannot decide."},
            {"id": "p2", "order": "BA", "output": v("B")},
            {"id": "p3", "order": "AB", "output": v("B")},
            {"id": "p3", "order": "BA", "output": v("A")},
        ],
    )
    metrics = run_evaluation(
        config(
            {"name": "judgebench", "path": str(data)},
            {"backend": "predictions", "path": str(preds)},
            placement="fixed",
        ),
        tmp_path / "run",
    )
    m = metrics["results"]["generate"]
    assert list(metrics["results"]) == ["generate"]  # recorded outputs: no verdict logits
    assert m["n"] == 4 and m["accuracy"] == 0.5 and m["accuracy_parsed"] == pytest.approx(2 / 3)
    assert m["parse_rate"] == 0.75
    assert m["swap/consistency"] == 0.5 and m["swap/prefer_first_rate"] == 0.25
    assert m["swap/prefer_second_rate"] == 0.0 and m["swap/position_bias"] == 0.25
    assert m["judgebench/score"] == 0.75 and m["swap/double_order_accuracy"] == 0.75
    # per source (p0, p1: mmlu-pro-math -> mmlu-pro; p2, p3: livecodebench): 1/2 and 2/2; single order
    # (the order AB only, the OpenCompass way): p0 right, p1 wrong, p2 unparsed, p3 right -> 2/4
    assert m["judgebench/mmlu-pro/score"] == 0.5 and m["judgebench/livecodebench/score"] == 1.0
    assert m["judgebench/mmlu-pro/n"] == 2 and m["judgebench/single_order/accuracy"] == 0.5
    assert "single_order" in metrics["protocol"]["averaging"] and metrics["protocol"]["placement"] == "fixed"
    report = (tmp_path / "run" / "report.md").read_text()
    assert "| mmlu-pro/score |" in report and "| placement_seed | 0 |" in report
    assert m["accuracy/mmlu-pro-math"] == 0.5 and m["accuracy/livecodebench"] == 0.5
    lo, hi = m["accuracy_parsed_ci_low"], m["accuracy_parsed_ci_high"]
    assert lo < 2 / 3 < hi
    out = tmp_path / "run"
    rows = [json.loads(x) for x in (out / "judgments.jsonl").read_text().splitlines()]
    assert {"id", "pass", "order", "output", "parsed", "verdict", "correct"} <= set(rows[0])
    p1_swap = next(r for r in rows if r["id"] == "p1" and r["pass"] == "swap")
    assert (p1_swap["order"], p1_swap["parsed"], p1_swap["verdict"], p1_swap["correct"]) == (
        "BA",
        "A",
        "B",
        True,
    )
    for name in ("metrics.json", "report.md", "placement.json", "domains.png"):
        assert (out / name).exists(), name
    report = (out / "report.md").read_text()
    assert "| generated judgments | 4 | 50.0 | 66.7 [" in report


def test_predictions_missing_output_is_an_error_naming_the_item(tmp_path):
    data = _judgebench_file(tmp_path / "jb.jsonl")
    preds = write_jsonl(tmp_path / "preds.jsonl", [{"id": "p0", "order": "AB", "output": "x"}])
    cfg = config(
        {"name": "judgebench", "path": str(data)},
        {"backend": "predictions", "path": str(preds)},
        placement="fixed",
        swap=False,
    )
    with pytest.raises(DataError, match=r"no recorded output for item 'p[123]' in order AB"):
        run_evaluation(cfg, tmp_path / "a")
    cfg["judge"]["missing"] = "unparsed"
    m = run_evaluation(cfg, tmp_path / "b")["results"]["generate"]
    assert m["parse_rate"] == 0.0 and m["n_missing"] == 3.0


def test_predictions_file_errors_name_file_and_line(tmp_path):
    data = _judgebench_file(tmp_path / "jb.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "p0", "order": "AB", "output": "x"}\n{"id": "p0", "order": "XY", "output": "y"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: field 'order'"):
        run_evaluation(
            config({"name": "judgebench", "path": str(data)}, {"backend": "predictions", "path": str(bad)}),
            tmp_path / "r",
        )


def test_judgerbenchv2_perfect_judge_in_both_modes_of_scoring(tmp_path):
    folder = tmp_path / "jbv2"
    folder.mkdir()
    (folder / "Knowledge.json").write_text(json.dumps(_jbv2_rows(12)))
    (folder / "safe.json").write_text(json.dumps(_jbv2_rows(9)))
    bench = {"name": "judgerbenchv2", "path": str(folder)}
    items = load_benchmark(bench).items
    preds = perfect_predictions(items, tmp_path / "p.jsonl", "winner_json")
    for compat in (None, "opencompass"):
        m = run_evaluation(
            config(
                {**bench, "compat": compat},
                {"backend": "predictions", "path": str(preds)},
                placement="opencompass",
            ),
            tmp_path / f"run-{compat}",
        )["results"]["generate"]
        # a judge that agrees with the ground truth everywhere: accuracy 100, no rank or score difference
        assert m["jbv2/accuracy"] == 100.0 and m["jbv2/normalized_diff"] == 0.0 and m["jbv2/final"] == 100.0
    order = json.loads((tmp_path / "run-None" / "placement.json").read_text())
    assert order["kind"] == "opencompass"
    balanced = generate_balanced_list(100)
    assert all(order["order"][it.id] == ("BA" if balanced[it.meta["index"]] else "AB") for it in items)
    assert (tmp_path / "run-None" / "ranks_generate.png").exists()


def test_rewardbench_and_rmb_scores(tmp_path):
    subsets = ["alpacaeval-easy", "alpacaeval-easy", "mt-bench-hard", "donotanswer", "math-prm", "hep-python"]
    rb = write_jsonl(
        tmp_path / "rb.jsonl",
        [
            {"id": i, "prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}", "subset": s}
            for i, s in enumerate(subsets)
        ],
    )
    items = load_benchmark({"name": "rewardbench", "path": str(rb)}).items
    preds = perfect_predictions(items, tmp_path / "rbp.jsonl", "cj2_choice", wrong={"4"})
    m = run_evaluation(
        config({"name": "rewardbench", "path": str(rb)}, {"backend": "predictions", "path": str(preds)}),
        tmp_path / "rb",
    )["results"]["generate"]
    # chat 100, chat_hard 100, safety 100; reasoning (official): (math-prm 0 + code 100) / 2 = 50
    assert m["rewardbench/chat"] == 100.0 and m["rewardbench/reasoning"] == 50.0
    assert m["rewardbench/final"] == pytest.approx((100 + 100 + 100 + 50) / 4)

    root = tmp_path / "RMB_dataset"
    turn = lambda text: {"role": "user", "content": text, "language": "English"}  # noqa: E731
    (root / "Pairwise_set" / "Helpfulness").mkdir(parents=True)
    (root / "BoN_set" / "Harmlessness").mkdir(parents=True)
    (root / "Pairwise_set" / "Helpfulness" / "h.json").write_text(
        json.dumps(
            [
                {
                    "pair_uid": f"pair{i}",
                    "conversation_input": [turn(f"q{i}")],
                    "chosen": {"llm_name": "x", "answer": "good"},
                    "reject": {"llm_name": "y", "answer": "bad"},
                    "category_path": "Pairwise_set/Helpfulness/Chat",
                }
                for i in range(2)
            ]
        )
    )
    (root / "BoN_set" / "Harmlessness" / "b.json").write_text(
        json.dumps(
            [
                {
                    "bon_uid": "g1",
                    "conversation_input": [turn("q")],
                    "bon_best": {"llm_name": "x", "answer": "best"},
                    "loser_list": [{"llm_name": "y", "answer": "l1"}, {"llm_name": "z", "answer": "l2"}],
                    "category_path": "BoN_set/Harmlessness/S1",
                }
            ]
        )
    )
    items = load_benchmark({"name": "rmb", "path": str(root)}).items
    assert sorted(it.id for it in items) == ["g1#0", "g1#1", "pair0", "pair1"]
    preds = perfect_predictions(items, tmp_path / "rmbp.jsonl", "cj2_choice", wrong={"g1#1"})
    m = run_evaluation(
        config({"name": "rmb", "path": str(root)}, {"backend": "predictions", "path": str(preds)}),
        tmp_path / "rmb",
    )["results"]["generate"]
    # the best answer lost to one loser: the group is wrong although 1 of its 2 comparisons is right
    assert m["rmb/pair_accuracy"] == 100.0 and m["rmb/bon_accuracy"] == 0.0 and m["rmb/final"] == 50.0


def test_gt_path_relabels_items_and_counts_the_uncovered(tmp_path):
    data = _judgebench_file(tmp_path / "jb.jsonl")
    gt = write_jsonl(
        tmp_path / "gt.jsonl",
        [{"id": "p0", "label": "B"}, {"id": "p1", "label": "B"}, {"id": "zzz", "label": "A"}],
    )
    bench = load_benchmark({"name": "judgebench", "path": str(data), "gt_path": str(gt)})
    assert [(it.id, it.label) for it in bench.items] == [("p0", "B"), ("p1", "B")]
    assert bench.stats["no_gt"] == 2 and bench.stats["gt_unmatched"] == 1
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"id": "p0", "label": "C"}])
    with pytest.raises(DataError, match=r"bad.jsonl:1: field 'label'"):
        load_benchmark({"name": "judgebench", "path": str(data), "gt_path": str(bad)})


def test_benchmark_config_errors():
    with pytest.raises(ValueError, match="unknown key"):
        load_benchmark({"name": "embedded", "n_querys": 3})
    with pytest.raises(ValueError, match="needs benchmark.path"):
        load_benchmark({"name": "rewardbench"})
    with pytest.raises(ValueError, match="benchmark.name"):
        load_benchmark({"name": "nope"})


# --------------------------------------------------------------------------------------- resume, caps
def test_rerun_reuses_finished_rows_and_gives_the_same_metrics(tmp_path):
    bench = {"name": "embedded", "n_queries": 2, "scenarios": ["arithmetic", "dates"]}
    items = load_benchmark(bench).items
    preds = perfect_predictions(items, tmp_path / "p.jsonl", "cj2_choice", wrong={items[3].id, items[7].id})
    cfg = config(bench, {"backend": "predictions", "path": str(preds)}, style_probe=False)
    first = run_evaluation(cfg, tmp_path / "run")
    # tear the file as a kill mid-write would, drop some rows, and run again
    path = tmp_path / "run" / "judgments.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:9]) + lines[9][:20])
    second = run_evaluation(cfg, tmp_path / "run")
    assert second["runs"]["generate"]["reused_rows"] == 9
    assert second["runs"]["generate"]["recovered_torn_bytes"] == 20
    assert second["results"] == first["results"]
    assert len(path.read_text().splitlines()) == 2 * len(items)
    third = run_evaluation(cfg, tmp_path / "run")
    assert third["runs"]["generate"]["new_rows"] == 0 and third["results"] == first["results"]


def test_a_named_folder_refuses_another_config(tmp_path):
    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    judge = {"backend": "predictions", "path": str(preds)}
    run_evaluation(config(bench, judge), tmp_path / "run")
    with pytest.raises(ValueError, match="different configuration"):
        run_evaluation({**config(bench, judge), "seed": 1}, tmp_path / "run")
    changed = {**config(bench, judge), "seed": 1}
    changed["evaluate"]["overwrite"] = True
    assert run_evaluation(changed, tmp_path / "run")["seed"] == 1


def test_fingerprint_ignores_caps_and_batch_sizes_only():
    judge, bench, ev = {"backend": "hf", "name_or_path": "tiny", "batch_size": 8}, {"name": "embedded"}, {}
    base = fingerprint(judge, bench, ev, "balanced", 0)
    assert (
        fingerprint({**judge, "batch_size": 2}, {**bench, "limit": 5}, {"max_generated": 3}, "balanced", 0)
        == base
    )
    assert fingerprint({**judge, "max_new_tokens": 9}, bench, ev, "balanced", 0) != base
    assert fingerprint(judge, bench, ev, "opencompass", 0) != base
    assert fingerprint(judge, bench, ev, "balanced", 1) != base
    d = eval_dir("out", None, judge, bench, ev, "balanced", 0)
    assert (
        d.startswith("out/eval/embedded/tiny-")
        and eval_dir("out", "mine", judge, bench, ev, "x", 0) == "out/eval/mine"
    )


def test_generated_subset_is_seeded_and_nested():
    items = build_embedded(n_queries=2, scenarios=["arithmetic", "dates"]).items
    small, large, everything = (
        generated_subset(items, 3, 0),
        generated_subset(items, 6, 0),
        generated_subset(items, None, 0),
    )
    assert len(small) == 3 and large[:3] == small and len(everything) == len(items)
    assert {it.id for it in everything} == {
        it.id for it in items
    } and everything != items  # mixed, not file order
    assert {it.domain for it in everything[: len(items) // 2]} == {"arithmetic", "dates"}
    assert generated_subset(items, 3, 1) != small and generated_subset(list(reversed(items)), 3, 0) == small


def test_style_probe_pass_and_drop(tmp_path):
    """Standard prompt: all right; style prompt: one arithmetic item wrong -> drop 1/n there, 0 elsewhere."""
    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic", "dates"]}
    items = load_benchmark(bench).items
    path = perfect_predictions(items, tmp_path / "p.jsonl", "cj2_choice")
    placement = balanced_placement([it.id for it in items], 0)
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for it in items:
        order = "BA" if placement[it.id] else "AB"
        gold = it.label if order == "AB" else FLIP[it.label]
        verdict = FLIP[gold] if it.id == items[0].id else gold
        rows.append(
            {"id": it.id, "order": order, "style": True, "output": render_verdict(verdict, "cj2_choice")}
        )
    write_jsonl(path, rows)
    m = run_evaluation(
        config(bench, {"backend": "predictions", "path": str(path)}, style_probe=True), tmp_path / "run"
    )["results"]["generate"]
    n_arith = sum(it.domain == "arithmetic" for it in items)
    assert m["style/n"] == len(items)
    assert m["style/drop"] == pytest.approx(1 / len(items))
    assert m["style/drop/arithmetic"] == pytest.approx(1 / n_arith) and m["style/drop/dates"] == 0.0
    assert "Style probe" in (tmp_path / "run" / "report.md").read_text()


# ------------------------------------------------------------------------------------------- configs
def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from cj2.evaluation.runner import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("evaluate", overrides=overrides)


@pytest.mark.parametrize("judge", ["hf", "vllm", "openai", "predictions"])
@pytest.mark.parametrize(
    "benchmark",
    ["embedded", "judgerbenchv2", "rewardbench", "judgebench", "rmb", "rmbench", "rewardbench2", "pairwise"],
)
def test_every_judge_and_benchmark_config_composes(judge, benchmark):
    from cj2.evaluation.backends import judge_keys
    from cj2.evaluation.benchmarks import BENCHMARKS, COMMON_KEYS

    cfg = _compose([f"judge={judge}", f"benchmark={benchmark}"])
    assert cfg.judge.backend == judge and cfg.benchmark.name == benchmark
    # every key the yaml files spell is one the code reads (a typo in a config would be an error at run time)
    assert set(cfg.judge) - {"backend", "name"} <= set(judge_keys(judge))
    assert set(cfg.benchmark) <= set(COMMON_KEYS) | set(BENCHMARKS[benchmark].keys)


def test_evaluate_entry_in_process(tmp_path, capsys):
    """The Hydra entry with recorded predictions: the report is printed and the config saved."""
    from cj2.evaluate import evaluate

    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    cfg = _compose(
        [
            "judge=predictions",
            f"judge.path={preds}",
            "benchmark.n_queries=1",
            "benchmark.scenarios=[arithmetic]",
            f"output_root={tmp_path}",
            "logger.wandb.enabled=false",
            "evaluate.bootstrap=0",
            "evaluate.progress=false",
            "optimized_metric=generate/jbv2/final",
        ]
    )
    assert evaluate(cfg) == 100.0
    folder = next((tmp_path / "eval" / "embedded").iterdir())
    assert (folder / "config.yaml").exists() and "JudgerBenchV2" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["offline", "disabled"])
def test_evaluate_logs_the_domain_table_to_wandb(tmp_path, monkeypatch, mode):
    """With wandb on, the per-domain table of report.md is logged as a wandb.Table (``domains``); offline,
    its file in the run's wandb folder holds report.md's columns and rows. wandb disabled: nothing fails."""
    from cj2.evaluate import evaluate
    from cj2.evaluation.report import domain_rows

    monkeypatch.delenv("WANDB_MODE", raising=False)
    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic", "dates"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    cfg = _compose(
        [
            "judge=predictions",
            f"judge.path={preds}",
            "benchmark.n_queries=1",
            "benchmark.scenarios=[arithmetic,dates]",
            f"output_root={tmp_path}",
            "logger.wandb.enabled=true",
            f"logger.wandb.mode={mode}",
            "evaluate.bootstrap=0",
            "evaluate.progress=false",
        ]
    )
    evaluate(cfg)
    folder = next((tmp_path / "eval" / "embedded").iterdir())
    results = json.loads((folder / "metrics.json").read_text())["results"]
    columns, rows = domain_rows(results)
    assert columns == ["domain", "n", "generate/accuracy"] and len(rows) == 2 and rows[0][2] == 1.0
    assert "| arithmetic | 6 | 100.0 |" in (folder / "report.md").read_text()
    tables = list(folder.glob("wandb/offline-run-*/files/media/table/domains_*.table.json"))
    if mode == "disabled":
        assert tables == []
        return
    assert len(tables) == 1
    assert json.loads(tables[0].read_text()) == {"columns": columns, "data": rows}


def test_time_budget_stops_cleanly_and_a_rerun_finishes(tmp_path):
    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    judge = {"backend": "predictions", "path": str(preds)}
    cut = run_evaluation(config(bench, judge, time_budget_s=0), tmp_path / "run")
    assert cut["runs"]["generate"]["stopped_by_time_budget"] and cut["results"]["generate"] == {"n": 0.0}
    assert any("time budget" in note for note in cut["notes"])
    done = run_evaluation(config(bench, judge, time_budget_s=None), tmp_path / "run")
    assert not done["runs"]["generate"]["stopped_by_time_budget"]
    assert done["results"] == run_evaluation(config(bench, judge), tmp_path / "fresh")["results"]


def test_modes():
    from cj2.evaluation.runner import resolve_modes

    assert resolve_modes("auto", True) == ["logits", "generate"] and resolve_modes("auto", False) == [
        "generate"
    ]
    assert resolve_modes("both", True) == ["logits", "generate"]
    with pytest.raises(ValueError, match="verdict logits"):
        resolve_modes("logits", False)
    with pytest.raises(ValueError, match="evaluate.mode"):
        resolve_modes("fast", True)


def test_time_budget_stops_before_a_batch_that_would_overrun(tmp_path):
    """Each batch (2 passes) takes 0.2 s; budget 0.3 s: batch 1 runs, batch 2 would end at 0.4 s > 0.3 s."""
    import time

    from cj2.evaluation.runner import run_mode
    from cj2.judge import JudgeResult

    class SlowJudge:
        def judge_items(self, items, *, style_note=None, keys=None):
            time.sleep(0.1)
            return [JudgeResult(verdict="A", critique="", output="x") for _ in items]

    items = build_embedded(n_queries=1, scenarios=["arithmetic"]).items[:6]
    store = ResultStore(tmp_path / "rows.jsonl", lambda r: (r["id"], r["pass"]))
    placement = balanced_placement([it.id for it in items], 0)
    stats = run_mode(
        SlowJudge(),
        "generate",
        items,
        placement,
        ["headline", "swap"],
        store,
        batch_size=2,
        time_budget_s=0.3,
        progress=False,
    )
    assert stats["stopped_by_time_budget"] and stats["done_items"] == 2 and stats["new_rows"] == 4


def test_saved_config_is_redacted_and_kept_when_a_config_is_refused(tmp_path):
    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    cfg = config(bench, {"backend": "predictions", "path": str(preds)})
    cfg["logger"] = {"wandb": {"token": "tok-0123456789"}}  # a secret-looking key anywhere is redacted
    run_evaluation(cfg, tmp_path / "run")
    saved = (tmp_path / "run" / "config.yaml").read_text()
    assert "tok-0123456789" not in saved and "<redacted>" in saved and "seed: 0" in saved
    with pytest.raises(ValueError, match="different configuration"):
        run_evaluation({**cfg, "seed": 2}, tmp_path / "run")
    assert (tmp_path / "run" / "config.yaml").read_text() == saved  # still describes the results there
