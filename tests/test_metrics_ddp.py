"""Every metric reduces under DDP to what one process computes on all the data.

Three checks per metric: (1) ``merge_state`` of two instances, (2) torchmetrics' real sync path
(``Metric._sync_dist``) driven by a simulated two-rank world whose all-gather runs in threads, including
ranks that saw nothing and names (models, domains) that only the other rank saw, and (3, slow) a real
two-process ``gloo`` group.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cj2.metrics import (
    BootstrapCI,
    Calibration,
    JudgeAccuracy,
    JudgerBenchV2Score,
    RankAgreement,
    RewardBenchScore,
    RMBScore,
    SwapConsistency,
)

Batch = dict[str, Any]


class ThreadWorld:
    """An all-gather across ``size`` simulated ranks, each one a thread; call order matches per rank,
    exactly as torchmetrics issues its gathers in the same order on every rank."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=20)
        self.slots: list[torch.Tensor | None] = [None] * size

    def gather_fn(self, rank: int) -> Callable[..., list[torch.Tensor]]:
        def gather(tensor: torch.Tensor, group: Any = None) -> list[torch.Tensor]:
            self.slots[rank] = tensor.clone()
            self.barrier.wait()
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before every rank has read it
            return out

        return gather


def ddp_compute(factory: Callable[..., Any], shards: list[list[Batch]]) -> list[dict[str, torch.Tensor]]:
    world = ThreadWorld(len(shards))
    metrics = [
        factory(dist_sync_fn=world.gather_fn(r), distributed_available_fn=lambda: True)
        for r in range(len(shards))
    ]
    for metric, shard in zip(metrics, shards):
        for batch in shard:
            metric.update(**batch)
    results: list[Any] = [None] * len(shards)

    def run(rank: int) -> None:
        try:
            results[rank] = metrics[rank].compute()
        except BaseException as exc:  # surfaced below, in the test's thread
            results[rank] = exc

    threads = [threading.Thread(target=run, args=(r,)) for r in range(len(shards))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def single_compute(factory: Callable[..., Any], shards: list[list[Batch]]) -> dict[str, torch.Tensor]:
    metric = factory()
    for shard in shards:
        for batch in shard:
            metric.update(**batch)
    return metric.compute()


def merged_compute(factory: Callable[..., Any], shards: list[list[Batch]]) -> dict[str, torch.Tensor]:
    metrics = [factory() for _ in shards]
    for metric, shard in zip(metrics, shards):
        for batch in shard:
            metric.update(**batch)
    for other in metrics[1:]:
        metrics[0].merge_state(other)
    return metrics[0].compute()


def assert_same(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], equal_nan=True, msg=key)


def jbv2_batch(rows: list[tuple[str, str, str, str | None, str]]) -> Batch:
    scenario, model_a, model_b, judge, gt = (list(c) for c in zip(*rows))
    return dict(scenario=scenario, model_a=model_a, model_b=model_b, judge_verdict=judge, gt_verdict=gt)


# scenario "S" is split over both ranks; model "m4" and scenario "T" are only on rank 1
JB_RANK0 = [
    jbv2_batch([("S", "m1", "ref", "A", "A"), ("S", "ref", "m2", "B", "A"), ("S", "m3", "ref", None, "B")]),
    jbv2_batch([("S", "ref", "m1", "A", "B"), ("S", "m2", "ref", "A", "A")]),
]
JB_RANK1 = [
    jbv2_batch(
        [
            ("S", "m3", "ref", "A", "A"),
            ("S", "ref", "m4", "B", "B"),
            ("T", "m1", "ref", "B", "A"),
            ("T", "ref", "m2", "B", "B"),
            ("T", "m1", "ref", "A", "A"),
            ("S", "ref", "m2", None, "B"),
        ]
    )
]

RMB_RANK0 = [
    dict(
        kind=["pair", "bon", "bon"],
        group_id=["p1", "g1", "g2"],
        correct=[True, True, True],
        category=["Helpfulness/a", "Helpfulness/a", "Harmlessness/b"],
    )
]
RMB_RANK1 = [
    dict(
        kind=["bon", "bon", "pair"],
        group_id=["g1", "g2", "p2"],
        correct=[True, False, False],
        category=["Helpfulness/a", "Harmlessness/b", "Harmlessness/c"],
    )
]

CASES: dict[str, tuple[Callable[..., Any], list[list[Batch]]]] = {
    "accuracy-dynamic-domains": (
        JudgeAccuracy,
        [
            [dict(pred=["A", None, "B"], target=["A", "A", "A"], domain=["chat", "code", "chat"])],
            [
                dict(pred=["B", "tie"], target=["B", "tie"], domain=["math", "code"]),
                dict(pred=[None], target=["B"], domain=["safety"]),
            ],
        ],
    ),
    "accuracy-fixed-domains": (
        lambda **kw: JudgeAccuracy(domains=["chat", "code", "math"], **kw),
        [
            [dict(pred=["A", None], target=["A", "A"], domain=["chat", "code"])],
            [dict(pred=["B"], target=["B"], domain=["math"])],
        ],
    ),
    "swap": (
        SwapConsistency,
        [
            [dict(verdict_ab=["A", "A", None], verdict_ba=["B", "A", "A"], target=["A", "B", "A"])],
            [dict(verdict_ab=["B", "tie"], verdict_ba=["B", "tie"], target=["B", "tie"])],
        ],
    ),
    "judgerbench-strict": (lambda **kw: JudgerBenchV2Score("ref", **kw), [JB_RANK0, JB_RANK1]),
    "judgerbench-opencompass": (
        lambda **kw: JudgerBenchV2Score("ref", compat="opencompass", **kw),
        [JB_RANK0, JB_RANK1],
    ),
    "judgerbench-empty-rank": (lambda **kw: JudgerBenchV2Score("ref", **kw), [JB_RANK0 + JB_RANK1, []]),
    "rank-agreement": (
        RankAgreement,
        [
            [dict(scenario=["s", "s"], model=["a", "b"], judge_score=[1, 2], gt_score=[1, 1])],
            [
                dict(
                    scenario=["s", "s", "s"], model=["a", "c", "b"], judge_score=[2, 0, 1], gt_score=[2, 0, 2]
                )
            ],
        ],
    ),
    "rmb": (RMBScore, [RMB_RANK0, RMB_RANK1]),
    "rmb-empty-rank": (RMBScore, [[], RMB_RANK0 + RMB_RANK1]),
    "rewardbench": (
        RewardBenchScore,
        [
            [dict(subset=["alpacaeval-easy", "math-prm", "hep-go"], correct=[1.0, 0.0, 1.0])],
            [dict(subset=["mt-bench-hard", "donotanswer", "math-prm"], correct=[1.0, 0.5, 1.0])],
        ],
    ),
    "calibration": (
        lambda **kw: Calibration(n_bins=5, **kw),
        [
            [dict(confidence=[0.9, 0.55], correct=[True, False], prob_gold=[0.9, 0.45])],
            [dict(confidence=[0.3, 1.0, 0.7], correct=[False, True, True])],
        ],
    ),
    "bootstrap": (
        lambda **kw: BootstrapCI(n_resamples=200, **kw),
        [
            [dict(values=[1.0, 0.0, 1.0])],
            [dict(values=[1.0, 1.0, 0.0, 1.0])],
        ],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_merge_state_equals_one_process(case):
    factory, shards = CASES[case]
    assert_same(merged_compute(factory, shards), single_compute(factory, shards))


@pytest.mark.parametrize("case", sorted(CASES))
def test_simulated_ddp_sync_equals_one_process(case):
    factory, shards = CASES[case]
    expected = single_compute(factory, shards)
    for result in ddp_compute(factory, shards):
        assert_same(result, expected)


def test_simulated_ddp_reports_names_only_the_other_rank_saw():
    factory, shards = CASES["accuracy-dynamic-domains"]
    rank0 = ddp_compute(factory, shards)[0]
    assert float(rank0["accuracy/safety"]) == 0.0 and int(rank0["n/math"]) == 1


def test_states_are_restored_after_compute_and_reset_keeps_dtypes():
    factory, shards = CASES["judgerbench-strict"]
    world_results = ddp_compute(factory, shards)  # sync, compute, unsync
    assert world_results[0]["final"] == world_results[1]["final"]
    metric = JudgerBenchV2Score("ref")
    for batch in JB_RANK0:
        metric.update(**batch)
    metric.reset()
    assert (
        all(t.dtype == torch.int64 for t in metric.scenario_id) and metric.names_utf8[0].dtype == torch.uint8
    )
    for batch in JB_RANK1:
        metric.update(**batch)
    assert_same(metric.compute(), single_compute(CASES["judgerbench-strict"][0], [JB_RANK1]))


# -- a real process group ------------------------------------------------------------------------------------
REAL_CASES = (
    "accuracy-dynamic-domains",
    "judgerbench-opencompass",
    "judgerbench-empty-rank",
    "rmb-empty-rank",
    "rank-agreement",
    "bootstrap",
)


def _gloo_worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        for case in REAL_CASES:
            factory, shards = CASES[case]
            metric = factory()
            for batch in shards[rank]:
                metric.update(**batch)
            results[case] = metric.compute()
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_real_gloo_process_group(tmp_path):
    mp.spawn(_gloo_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        for case in REAL_CASES:
            factory, shards = CASES[case]
            assert_same(results[case], single_compute(factory, shards))
