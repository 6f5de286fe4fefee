"""StepBatchSampler: step totals, length grouping, DDP sharding, resume without repeats or gaps."""

from __future__ import annotations

import random

from cj2.data.sampler import StepBatchSampler


def make(n=50, batch_size=4, **kw):
    rng = random.Random(0)
    lengths = [rng.randint(10, 500) for _ in range(n)]
    resp = [rng.randint(1, 50) for _ in range(n)]
    verdict = [i % 3 != 0 for i in range(n)]
    return lengths, resp, verdict, StepBatchSampler(lengths, resp, verdict, batch_size=batch_size, **kw)


def test_every_index_once_per_epoch_and_reshuffled():
    _, _, _, s = make(batch_size=4, accumulate=2, seed=1)
    first = [i for mb in s for i in mb.indices]
    assert sorted(first) == list(range(50))
    s.set_epoch(1)
    second = [i for mb in s for i in mb.indices]
    assert sorted(second) == list(range(50)) and second != first


def test_step_totals_cover_the_whole_step():
    _, resp, verdict, s = make(batch_size=4, accumulate=3, seed=0)
    mbs = list(s)
    for start in range(0, len(mbs), 3):
        step = mbs[start : start + 3]
        flat = [i for mb in step for i in mb.indices]
        for mb in step:
            assert mb.step_tokens == sum(resp[i] for i in flat)
            assert mb.step_rows == len(flat)
            assert mb.step_verdict_rows == sum(verdict[i] for i in flat)


def test_length_grouping_reduces_padding():
    lengths, _, _, grouped = make(n=400, batch_size=8, seed=0, group_window=50)
    _, _, _, plain = make(n=400, batch_size=8, seed=0, group_by_length=False)

    def pad_fraction(s):
        padded = sum(max(lengths[i] for i in mb.indices) * len(mb.indices) for mb in s)
        return 1 - sum(lengths) / padded

    assert pad_fraction(grouped) < 0.05 < pad_fraction(plain)


def test_ddp_ranks_partition_the_data_with_global_totals():
    args = make(n=48)[:3]
    r0 = list(StepBatchSampler(*args, batch_size=3, accumulate=2, seed=0, rank=0, world_size=2))
    r1 = list(StepBatchSampler(*args, batch_size=3, accumulate=2, seed=0, rank=1, world_size=2))
    assert len(r0) == len(r1)
    seen = [i for mb in r0 + r1 for i in mb.indices]
    assert sorted(seen) == list(range(48))
    for a, b in zip(r0, r1):  # the same optimizer step on both ranks sees the same totals
        assert (a.step_tokens, a.step_rows) == (b.step_tokens, b.step_rows)


def test_resume_skips_consumed_batches_exactly():
    args = make()[:3]
    full = [mb.indices for mb in StepBatchSampler(*args, batch_size=4, seed=3)]
    s = StepBatchSampler(*args, batch_size=4, seed=3)
    s.resume(0, 5)
    assert [mb.indices for mb in s] == full[5:]
    assert [mb.indices for mb in s] == full  # the skip applies once
    s.resume(0, 5)
    s.set_epoch(1)  # a different epoch is not skipped
    assert len(list(s)) == len(full)


def test_groups_stay_in_one_micro_batch_and_every_index_comes_once():
    n = 60
    rng = random.Random(3)
    lengths = [rng.randint(10, 500) for _ in range(n)]
    groups = [i // 2 for i in range(n)]  # pairs: both orders of one question
    groups[-6:] = [100] * 6  # and one unit larger than a micro-batch
    for group_by_length in (True, False):
        s = StepBatchSampler(
            lengths, [1] * n, [True] * n, batch_size=4, seed=1, groups=groups, group_by_length=group_by_length
        )
        for epoch in (0, 1):
            s.set_epoch(epoch)
            mbs = list(s)
            flat = [i for mb in mbs for i in mb.indices]
            assert sorted(flat) == list(range(n))
            where = {i: k for k, mb in enumerate(mbs) for i in mb.indices}
            for g in set(groups[:-6]):
                members = [i for i in range(n) if groups[i] == g]
                assert len({where[i] for i in members}) == 1, (g, members)
            big = [where[i] for i in range(n - 6, n)]
            assert len(set(big)) == 2  # 6 samples in micro-batches of 4: one full batch and a remainder
            assert all(len(mb.indices) <= 4 for mb in mbs)
    # without groups the same seed splits some pairs (the grouping is what keeps them together)
    plain = StepBatchSampler(lengths, [1] * n, [True] * n, batch_size=4, seed=1)
    where = {i: k for k, mb in enumerate(plain) for i in mb.indices}
    assert any(where[2 * g] != where[2 * g + 1] for g in range(n // 2))


def test_groups_must_match_the_samples():
    import pytest

    with pytest.raises(ValueError, match="groups"):
        StepBatchSampler([1, 2, 3], [1, 1, 1], [True] * 3, batch_size=2, groups=[0, 0])
