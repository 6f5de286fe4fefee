"""Batch sampling that knows about optimizer steps, lengths, ranks and resume.

:class:`StepBatchSampler` yields :class:`MicroBatch` descriptors. Each carries the *step totals* -- response
tokens, rows and verdict rows summed over every micro-batch of the same optimizer step on every rank -- so
the objective can normalise exactly as one big batch would (arXiv 2507.09104, Table 1 writes the loss as a
mean over the whole batch; gradient accumulation and data parallelism must not change it).

Length grouping: indices are shuffled, cut into windows of ``batch_size * group_window`` samples, sorted by
length inside each window and cut into micro-batches; the micro-batches are shuffled again. Samples of a
batch have similar lengths (little padding) while the order across batches stays random.

Groups: with ``groups`` (one key per sample), samples that share a key are shuffled, length-sorted
and placed as
one unit and never split across micro-batches unless the unit is larger than a micro-batch. The training data
module uses it to keep both orders of a pair (swap augmentation) in the same micro-batch: a letter preference
then gets equal and opposite gradients inside every batch, and only the content of the pair can lower the
verdict loss.

Resume: ``resume(epoch, consumed)`` makes the next iteration of that epoch skip the micro-batches that were
already trained; the permutation is a pure function of ``(seed, epoch)``, so nothing is repeated or lost.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class MicroBatch:
    indices: tuple[int, ...]
    epoch: int
    position: int  # index of this micro-batch within the epoch, on this rank
    step_tokens: float  # (weighted) response tokens in the whole optimizer step, all ranks
    step_rows: float
    step_verdict_rows: float


def _dist_info() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except Exception:  # pragma: no cover - torch without distributed
        pass
    return 0, 1


class StepBatchSampler:
    def __init__(
        self,
        lengths: Sequence[int],
        response_tokens: Sequence[int],
        has_verdict: Sequence[bool],
        *,
        batch_size: int,
        accumulate: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        group_by_length: bool = True,
        group_window: int = 32,
        drop_last: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        weights: Sequence[float] | None = None,
        groups: Sequence[object] | None = None,
    ):
        if batch_size < 1 or accumulate < 1:
            raise ValueError("batch_size and accumulate must be >= 1")
        self.lengths = list(lengths)
        self.response_tokens = list(response_tokens)
        self.has_verdict = list(has_verdict)
        self.weights = [1.0] * len(self.lengths) if weights is None else [float(w) for w in weights]
        if groups is not None and len(groups) != len(self.lengths):
            raise ValueError(f"groups has {len(groups)} keys for {len(self.lengths)} samples")
        self.groups = None if groups is None else list(groups)
        self.batch_size = batch_size
        self.accumulate = accumulate
        self.seed = seed
        self.shuffle = shuffle
        self.group_by_length = group_by_length
        self.group_window = group_window
        self.drop_last = drop_last
        self._rank, self._world = rank, world_size
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    # Lightning calls set_epoch on samplers it finds on the dataloader.
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume(self, epoch: int, consumed: int) -> None:
        """Skip the first ``consumed`` micro-batches of ``epoch`` on the next iteration of that epoch."""
        self._resume = (int(epoch), int(consumed))

    @property
    def rank_world(self) -> tuple[int, int]:
        if self._rank is not None and self._world is not None:
            return self._rank, self._world
        return _dist_info()

    def _batches(self, epoch: int) -> list[list[int]]:
        if self.groups is not None:
            return self._grouped_batches(epoch)
        order = list(range(len(self.lengths)))
        rng = random.Random(self.seed * 1_000_003 + epoch)
        if self.shuffle:
            rng.shuffle(order)
        if self.group_by_length:
            window = self.batch_size * self.group_window
            grouped = []
            for s in range(0, len(order), window):
                grouped.extend(sorted(order[s : s + window], key=lambda i: self.lengths[i]))
            order = grouped
        batches = [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and self.group_by_length:
            rng.shuffle(batches)
        return batches

    def _grouped_batches(self, epoch: int) -> list[list[int]]:
        """As :meth:`_batches`, with the samples of a group as one unit that a micro-batch takes whole."""
        units_by_key: dict[object, list[int]] = {}
        for i, key in enumerate(self.groups or []):
            units_by_key.setdefault(key, []).append(i)
        units = list(units_by_key.values())
        rng = random.Random(self.seed * 1_000_003 + epoch)
        if self.shuffle:
            rng.shuffle(units)
        if self.group_by_length:
            window = self.batch_size * self.group_window  # samples per window, as in the ungrouped path
            grouped, current, size = [], [], 0
            for u in units:
                current.append(u)
                size += len(u)
                if size >= window:
                    grouped.extend(sorted(current, key=lambda u: max(self.lengths[i] for i in u)))
                    current, size = [], 0
            grouped.extend(sorted(current, key=lambda u: max(self.lengths[i] for i in u)))
            units = grouped
        batches: list[list[int]] = []
        current = []
        for u in units:
            if current and len(current) + len(u) > self.batch_size:
                batches.append(current)
                current = []
            if len(u) > self.batch_size:  # a unit larger than a micro-batch fills whole micro-batches
                for s in range(0, len(u), self.batch_size):
                    piece = u[s : s + self.batch_size]
                    if len(piece) == self.batch_size:
                        batches.append(piece)
                    else:
                        current = piece
                continue
            current = current + u
        if current:
            batches.append(current)
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle and self.group_by_length:
            rng.shuffle(batches)
        return batches

    def _plan(self, epoch: int) -> list[MicroBatch]:
        rank, world = self.rank_world
        batches = self._batches(epoch)
        per_step = self.accumulate * world
        # Every rank must see the same number of micro-batches; a ragged tail is cut on all ranks alike.
        usable = len(batches) - len(batches) % world
        out = []
        for step_start in range(0, usable, per_step):
            step = batches[step_start : step_start + per_step]
            step = step[: len(step) - len(step) % world]
            flat = [i for b in step for i in b]
            w = self.weights
            tokens = sum(w[i] * self.response_tokens[i] for i in flat)
            verdict_rows = sum(w[i] for i in flat if self.has_verdict[i])
            rows = sum(w[i] for i in flat)
            for j, b in enumerate(step):
                if j % world == rank:
                    out.append(MicroBatch(tuple(b), epoch, len(out), tokens, rows, verdict_rows))
        return out

    def __iter__(self) -> Iterator[MicroBatch]:
        plan = self._plan(self.epoch)
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
            self._resume = None
        yield from plan[start:]

    def __len__(self) -> int:
        return len(self._plan(self.epoch))
