"""The LightningDataModule: records -> encoded samples -> step-aware batches.

Sources, in order: the built-in verifiable tasks (``builtin``), JSONL record files (``train_files``,
``val_files``) and, for ``loss=dpo_seq``, preference files (``preference_files``)
or preference pairs made from
the built-in tasks. Records are encoded once in ``setup``; skipped records are counted per reason, and the
run stops when more than ``max_skip_fraction`` of a split is skipped.

RFT data (``rft``): an object built by the training run from ``data.rejection``
(:class:`cj2.curation.rft_data.BuiltinRFT`; this module does not import curation). Drawn once, it replaces
the built-in gold judgments. Drawn during training (the policy as the sampler, semi-online rounds), each
round is a Lightning epoch of ``round_steps`` optimizer steps: with ``reload_dataloaders_every_n_epochs=1``
(set here) Lightning asks for a new train dataloader at every epoch, and :meth:`train_dataloader` draws the
round's data with the weights of that moment (gathered under FSDP2), so training goes on from the same
weights, optimizer state and schedule. A resumed run is at the epoch (round) of its checkpoint: the round's
draws are read back from the run folder (``rft_rounds/``), where a fresh run (no ``ckpt_path``) starts
empty.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from torch.utils.data import DataLoader, Dataset

from cj2.data.collator import EncodedSample, JudgeCollator, encode_preference, encode_record
from cj2.data.io import DataError, SkipRecord
from cj2.data.packing import PackedCollator, resolve_packing
from cj2.data.records import iter_train_records, read_preference_records
from cj2.data.sampler import MicroBatch, StepBatchSampler
from cj2.data.schema import SWAP_SUFFIX, PairwiseItem, PreferenceRecord, TrainRecord, pair_key

log = logging.getLogger(__name__)

ROUND_HEADLINE = (
    "pass_at_m",
    "keep_rate",
    "spurious_share",
    "draws_saved",
    "paired_dropped",
    "gold_fallback",
)
"""A semi-online round's numbers kept in ``metrics.json`` (``rft/round<r>/<key>``) and across resume."""


class TooManySkipped(RuntimeError):
    pass


def file_list(value: Any, key: str) -> list[str]:
    """A ``data.*_files`` value as a list of paths: one string is one path (not its characters)."""
    if value is None:
        return []
    if isinstance(value, (str, os.PathLike)):
        return [os.fspath(value)]
    if not isinstance(value, Sequence):
        raise ValueError(f"{key} must be a list of paths (or one path), got {type(value).__name__}")
    out = []
    for i, p in enumerate(value):
        if not isinstance(p, (str, os.PathLike)) or not os.fspath(p):
            raise ValueError(f"{key}[{i}] must be a path, got {p!r}")
        out.append(os.fspath(p))
    return out


def check_distinct_files(train: Sequence[str], val: Sequence[str]) -> None:
    """Refuse a validation file that is one of the training files: validating on training data measures
    nothing. Compared by file identity (links, other spellings of one path), then by content."""
    from cj2.data.io import file_sha256

    def same(a: str, b: str) -> bool:
        try:
            if os.path.samefile(a, b):
                return True
            if os.path.getsize(a) != os.path.getsize(b):
                return False
            return file_sha256(a) == file_sha256(b)
        except OSError:  # a missing file is reported by the reader, naming it
            return False

    for i, v in enumerate(val):
        for j, t in enumerate(train):
            if same(v, t):
                raise ValueError(
                    f"data.val_files[{i}] ({v}) is the same file as data.train_files[{j}] ({t}) or has the "
                    f"same content: validating on the training data measures nothing; give held-out records"
                )


def encode_all(
    records: Sequence[TrainRecord],
    tokenizer,
    *,
    max_length: int,
    overlong: str,
    need_verdict_tokens: bool,
    max_skip_fraction: float,
    split: str,
) -> tuple[list[EncodedSample], dict[str, Any]]:
    """Encode records, counting skips per reason; raise when the skipped fraction exceeds the limit."""
    samples: list[EncodedSample] = []
    skipped: Counter[str] = Counter()
    examples: dict[str, str] = {}
    truncated = 0
    for rec in records:
        try:
            s = encode_record(
                rec,
                tokenizer,
                max_length=max_length,
                overlong=overlong,
                need_verdict_tokens=need_verdict_tokens,
            )
        except SkipRecord as err:
            skipped[err.reason] += 1
            examples.setdefault(err.reason, str(err))
            continue
        truncated += s.truncated_prompt_tokens > 0
        samples.append(s)
    n = len(records)
    stats = {
        "split": split,
        "records": n,
        "kept": len(samples),
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(skipped),
        "prompt_truncated": truncated,
    }
    if skipped:
        log.warning(
            "%s: skipped %d of %d records: %s (e.g. %s)",
            split,
            stats["skipped"],
            n,
            dict(skipped),
            "; ".join(examples.values()),
        )
    if n and stats["skipped"] / n > max_skip_fraction:
        raise TooManySkipped(
            f"{split}: {stats['skipped']} of {n} records skipped ({dict(skipped)}), more than "
            f"data.max_skip_fraction={max_skip_fraction}. First examples: {examples}"
        )
    return samples, stats


class _EncodedDataset(Dataset):
    """Holds encoded samples; ``__getitems__`` receives a :class:`MicroBatch` from the batch sampler."""

    def __init__(self, samples: Sequence[EncodedSample | tuple[EncodedSample, EncodedSample]]):
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        return self.samples[i]

    def __getitems__(self, mb: MicroBatch | Sequence[int]):
        if isinstance(mb, MicroBatch):
            return mb, [self.samples[i] for i in mb.indices]
        return None, [self.samples[i] for i in mb]


class _RoundSampler:
    """The batches of one round (a Lightning epoch) of semi-online RFT: exactly ``steps`` optimizer steps
    (``steps * accumulate`` micro-batches per rank), taken from the inner sampler's epochs ``1000 * epoch +
    k`` in turn (only whole steps of each, so every step's totals stay those of its own micro-batches).
    Positions count within the round, so a checkpoint resumes inside it."""

    def __init__(self, inner: StepBatchSampler, steps: int, accumulate: int):
        self.inner, self.steps, self.accumulate = inner, int(steps), int(accumulate)
        self.epoch = 0
        self._resume: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume(self, epoch: int, consumed: int) -> None:
        self._resume = (int(epoch), int(consumed))

    def _plan(self) -> list[MicroBatch]:
        n = self.steps * self.accumulate
        out: list[MicroBatch] = []
        for k in range(n + 1):  # each inner epoch gives at least one micro-batch (or the data is empty)
            if len(out) >= n:
                break
            plan = self.inner._plan(1000 * self.epoch + k)
            whole = len(plan) - len(plan) % self.accumulate
            out += plan[:whole] if whole else plan
        if not out:
            raise ValueError("the round's training data gives no micro-batch")
        return [dataclasses.replace(mb, epoch=self.epoch, position=i) for i, mb in enumerate(out[:n])]

    def __iter__(self):
        plan = self._plan()
        start = 0
        if self._resume is not None and self._resume[0] == self.epoch:
            start = self._resume[1]
            self._resume = None
        yield from plan[start:]

    def __len__(self) -> int:
        return self.steps * self.accumulate


class _Collate:
    def __init__(self, collator: JudgeCollator, preference: bool):
        self.collator = collator
        self.preference = preference

    def __call__(self, fetched):
        mb, samples = fetched
        if self.preference:  # rows: all chosen, then all rejected (sequence DPO)
            samples = [p[0] for p in samples] + [p[1] for p in samples]
        batch = self.collator(samples)
        if mb is not None:
            batch["position"] = (mb.epoch, mb.position)
            batch["step_totals"] = {
                "tokens": mb.step_tokens,
                "rows": mb.step_rows,
                "verdict_rows": mb.step_verdict_rows,
            }
        return batch


class JudgeDataModule(L.LightningDataModule):
    def __init__(
        self,
        tokenizer=None,
        *,
        builtin: Mapping[str, Any] | None = None,
        train_files: Sequence[str] = (),
        val_files: Sequence[str] = (),
        preference_files: Sequence[str] = (),
        max_length: int = 1024,
        overlong: str = "truncate_prompt",
        max_skip_fraction: float = 0.05,
        batch_size: int = 4,
        eval_batch_size: int = 8,
        accumulate_grad_batches: int = 1,
        group_by_length: bool = True,
        num_workers: int = 0,
        seed: int = 0,
        preference: bool = False,
        need_verdict_tokens: bool = False,
        pad_to_multiple_of: int | None = None,
        train_records: Sequence[TrainRecord] | None = None,
        val_records: Sequence[TrainRecord] | None = None,
        rejection: Mapping[str, Any] | None = None,
        packing: str | bool = "auto",
        rft: Any = None,
    ):
        super().__init__()
        self.tokenizer = tokenizer
        self.builtin = dict(builtin) if builtin else None
        self.train_files = file_list(train_files, "data.train_files")
        self.val_files = file_list(val_files, "data.val_files")
        self.preference_files = file_list(preference_files, "data.preference_files")
        check_distinct_files(self.train_files, self.val_files)
        # where each file record came from ("file:line"), for error messages (a non-finite loss names them)
        self.record_places: dict[str, str] = {}
        self.max_length = max_length
        self.overlong = overlong
        self.max_skip_fraction = max_skip_fraction
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.accumulate = accumulate_grad_batches
        self.group_by_length = group_by_length
        self.num_workers = num_workers
        self.seed = seed
        self.preference = preference
        self.need_verdict_tokens = need_verdict_tokens
        self.pad_to_multiple_of = pad_to_multiple_of
        # auto | true | false: padding-free packed rows (cj2.data.packing); auto packs under flash-attn only
        self.packing = packing
        self.packed = False  # what train_dataloader resolved
        self._extra_train = list(train_records or [])
        self._extra_val = list(val_records or [])
        # RFT data (arXiv 2507.09104, Eq. 3): the kept candidates of M draws per prompt replace the built-in
        # gold judgments; built by the caller from data.rejection (cj2.curation.rft_data.BuiltinRFT)
        if rft is None and rejection and rejection.get("m") is not None:
            raise ValueError(
                "data.rejection.m is set: pass rft=cj2.curation.rft_data.BuiltinRFT.from_config(rejection) "
                "(cj2.train does); the data module does not build RFT data itself"
            )
        self.rft = rft
        self._rft: tuple[list[TrainRecord], list[PreferenceRecord]] | None = None
        self._round: int | None = None  # the semi-online round the train set holds
        self.stats: dict[str, Any] = {}
        self._train_sampler: StepBatchSampler | None = None
        self._resume: tuple[int, int] | None = None
        self._consumed: tuple[int, int] = (0, 0)
        self.train_set: _EncodedDataset | None = None
        self.val_set: _EncodedDataset | None = None

    # ---------------------------------------------------------------- records
    def _builtin_tiers(self) -> list[str]:
        tiers = (self.builtin or {}).get("tiers")
        return ["hard"] if tiers is None else ([tiers] if isinstance(tiers, str) else list(tiers))

    def _split_families(self, split: str) -> list[str]:
        """The built-in families of ``split``: those of the configured tiers, narrowed by ``families``."""
        from cj2.data.tasks import split_families

        fams = split_families(split, self._builtin_tiers())
        chosen = (self.builtin or {}).get("families")
        if chosen is not None:  # validation and test hold out whole families: keep those of this split
            fams = [f for f in fams if f in chosen] or fams
        return fams

    def _builtin_items(
        self, split: str, n: int, seed_offset: int = 0, families: Sequence[str] | None = None
    ) -> list[PairwiseItem]:
        from cj2.data.tasks import generate_items

        b = self.builtin or {}
        fams = list(families) if families is not None else self._split_families(split)
        seed = int(b.get("seed", self.seed)) + seed_offset
        if split != "train" or not b.get("both_orders", False):
            return generate_items(n, split=split, seed=seed, families=fams)
        # swap augmentation: each question in both orders, adjacent (and kept in one micro-batch)
        items = []
        for it in generate_items((n + 1) // 2, split=split, seed=seed, families=fams):
            items += [it, dataclasses.replace(it.swapped(), id=it.id + SWAP_SUFFIX)]
        return items[:n]

    def _pair_groups(self, ids: Sequence[str]) -> list[str] | None:
        """Sampler groups when ``builtin.both_orders``: both orders of a question (and every RFT judgment of
        either order) share a key, so a micro-batch holds the pair whole."""
        if not (self.builtin or {}).get("both_orders", False):
            return None
        return [pair_key(i) for i in ids]

    def heldout_families(self, split: str = "validation") -> list[str]:
        """The families of ``split`` that training never sees."""
        train = set(self._split_families("train"))
        return [f for f in self._split_families(split) if f not in train]

    def _builtin_templates(self):
        return (self.builtin or {}).get("templates", "cj2_short")

    def _builtin_records(self, split: str, n: int) -> list[TrainRecord]:
        from cj2.data.tasks import build_records

        seed = int((self.builtin or {}).get("seed", self.seed))
        return build_records(self._builtin_items(split, n), self._builtin_templates(), seed=seed)

    @property
    def semi_online(self) -> bool:
        """Whether the RFT data is drawn during training (rounds, or the policy as the sampler)."""
        return self.rft is not None and self.rft.semi_online

    def rft_data(self) -> tuple[list[TrainRecord], list[PreferenceRecord]]:
        """The RFT records and preference pairs: drawn once (or loaded from the cache) per process, or those
        of the current round when drawn during training."""
        if self._rft is None:
            if self.semi_online:
                raise RuntimeError("semi-online RFT data exists per round, once training has started")
            b = self.builtin or {}
            items = self._builtin_items("train", int(b.get("n_train", 0)))
            records, prefs, info = self.rft.offline(
                items, templates=self._builtin_templates(), seed=int(b.get("seed", self.seed))
            )
            self.stats["rft"] = info["stats"]
            self.stats["rft_metrics"] = info["metrics"]
            self._rft = (records, prefs)
        return self._rft

    def prepare_data(self) -> None:
        if self.rft is not None and not self.semi_online:
            self.rft_data()  # draws the candidates into the cache on one process per node

    def train_records(self) -> list[TrainRecord]:
        recs = list(self._extra_train)
        if self.rft is not None:
            recs += self.rft_data()[0]
        elif self.builtin and self.builtin.get("n_train", 0):
            recs += self._builtin_records("train", int(self.builtin["n_train"]))
        recs += self._file_records(self.train_files)
        if recs and all(r.weight == 0 for r in recs):
            raise ValueError(
                f"every one of the {len(recs)} training records has weight 0 "
                f"({', '.join(map(str, self.train_files)) or 'no files'}): nothing would be trained"
            )
        return recs

    def val_records(self) -> list[TrainRecord]:
        recs = list(self._extra_val)
        if self.builtin and self.builtin.get("n_val", 0):
            recs += self._builtin_records("validation", int(self.builtin["n_val"]))
        return recs + self._file_records(self.val_files)

    def _file_records(self, paths: Sequence[str]) -> list[TrainRecord]:
        """The records of ``paths``, refusing an id met twice (in one file or across them)."""
        recs: list[TrainRecord] = []
        seen: dict[str, str] = {}
        for path in paths:
            for line, rec in iter_train_records(path):
                place = f"{path}:{line}"
                if rec.id in seen:
                    raise DataError(
                        f"duplicate record id {rec.id!r} (first at {seen[rec.id]}): ids must be unique",
                        path=path,
                        line=line,
                        field="id",
                    )
                seen[rec.id] = place
                recs.append(rec)
        self.record_places.update(seen)
        return recs

    def describe_records(self, ids: Sequence[str]) -> str:
        """Where records came from: ``"id (file:line)"`` for file records, the id alone otherwise."""
        return ", ".join(
            f"{i!r} ({self.record_places[i]})" if i in self.record_places else repr(i) for i in ids
        )

    def preference_records(self) -> list[PreferenceRecord]:
        recs: list[PreferenceRecord] = []
        for path in self.preference_files:
            recs += read_preference_records(path)
        if not recs and self.rft is not None:
            recs = list(self.rft_data()[1])  # a passing candidate against a wrong one of the same prompt
        if not recs and self.builtin and self.builtin.get("n_train", 0):
            from cj2.data.tasks import build_preference_records

            recs = build_preference_records(
                self._builtin_items("train", int(self.builtin["n_train"])),
                self._builtin_templates(),
                seed=int(self.builtin.get("seed", self.seed)),
            )
        return recs

    def eval_items(self, n: int, split: str = "validation", n_unseen: int = 0) -> list[PairwiseItem]:
        """Held-out pairwise items for the generated and verdict-logit validations: ``n`` new questions of
        the families trained on (in phrasings train never uses) and ``n_unseen`` of the families held out
        whole. Without held-out families of the split (or with ``n_unseen=0``) only the first part."""
        heldout = self.heldout_families(split)
        seen = [f for f in self._split_families(split) if f not in heldout]
        items = self._builtin_items(split, n, seed_offset=7919, families=seen or None) if n else []
        if n_unseen and heldout:
            items += self._builtin_items(split, n_unseen, seed_offset=7919, families=heldout)
        return items

    # ---------------------------------------------------------------- lightning hooks
    def setup(self, stage: str | None = None) -> None:
        if self.tokenizer is None:
            raise ValueError("JudgeDataModule needs a tokenizer")
        common = dict(
            max_length=self.max_length, overlong=self.overlong, max_skip_fraction=self.max_skip_fraction
        )
        if stage in (None, "fit") and self.semi_online:
            self._setup_rounds()
        elif self.train_set is None and stage in (None, "fit"):
            self._encode_train()
        if self.val_set is None and stage in (None, "fit", "validate"):
            samples, self.stats["validation"] = encode_all(
                self.val_records(),
                self.tokenizer,
                split="validation",
                need_verdict_tokens=self.need_verdict_tokens,
                **common,
            )
            self.val_set = _EncodedDataset(samples)

    def _encode_train(self) -> None:
        """Encode the training records (or preference pairs) into ``train_set``."""
        common = dict(
            max_length=self.max_length, overlong=self.overlong, max_skip_fraction=self.max_skip_fraction
        )
        if self.preference:
            pairs, skipped = [], Counter()
            prefs = self.preference_records()
            for rec in prefs:
                try:
                    pairs.append(
                        encode_preference(
                            rec, self.tokenizer, max_length=self.max_length, overlong=self.overlong
                        )
                    )
                except SkipRecord as err:
                    skipped[err.reason] += 1
            if prefs and sum(skipped.values()) / len(prefs) > self.max_skip_fraction:
                raise TooManySkipped(f"train(preference): skipped {dict(skipped)} of {len(prefs)}")
            self.stats["train"] = {
                "records": len(prefs),
                "kept": len(pairs),
                "skipped_by_reason": dict(skipped),
            }
            self.train_set = _EncodedDataset(pairs)
        else:
            samples, self.stats["train"] = encode_all(
                self.train_records(),
                self.tokenizer,
                split="train",
                need_verdict_tokens=self.need_verdict_tokens,
                **common,
            )
            self.train_set = _EncodedDataset(samples)
        if len(self.train_set) == 0:
            raise ValueError("no training records: configure data.builtin.n_train or data.train_files")

    # ---------------------------------------------------------------- semi-online rounds
    def rounds_dir(self) -> Path:
        """Where the rounds' candidates are cached: ``<run folder>/rft_rounds``."""
        root = getattr(self.trainer, "default_root_dir", None) if self.trainer is not None else None
        return Path(root or ".") / "rft_rounds"

    def _setup_rounds(self) -> None:
        trainer = self.trainer
        if trainer is None:
            raise ValueError(
                "semi-online RFT data (data.rejection.rounds, generator.backend=policy) needs a Trainer"
            )
        if self.rft.round_steps:
            max_epochs = trainer.max_epochs
            if max_epochs is not None and 0 <= max_epochs < self.rft.rounds:
                raise ValueError(
                    f"data.rejection.rounds={self.rft.rounds}: each round is an epoch of round_steps steps, "
                    f"but trainer.max_epochs={max_epochs}; set trainer.max_epochs=-1 (max_steps ends the run)"
                )
            trainer.reload_dataloaders_every_n_epochs = 1  # every round (epoch) asks for its own data
        if trainer.ckpt_path is None and trainer.is_global_zero:
            shutil.rmtree(self.rounds_dir(), ignore_errors=True)  # a fresh run: no other run's draws

    def _round_of_epoch(self, epoch: int) -> int:
        return min(int(epoch), self.rft.rounds - 1) if self.rft.round_steps else 0

    def _build_round(self, r: int) -> None:
        """Draw (or read back) round ``r``'s data with the current weights and encode it."""
        trainer = self.trainer
        b = self.builtin or {}
        items = self._builtin_items("train", int(b.get("n_train", 0)))
        seed = int(b.get("seed", self.seed))
        module = trainer.lightning_module if trainer is not None else None
        needs_model = self.rft.needs_model and (r > 0 or self.rft.first == "policy")
        if needs_model and (module is None or getattr(module, "tokenizer", None) is None):
            raise ValueError("the policy as the sampler needs the LightningModule's model and tokenizer")
        from cj2.distributed import gathered

        world = trainer.world_size if trainer is not None else 1
        with gathered(module.model) if needs_model else _nothing() as model:
            out = self.rft.round_data(
                r,
                items,
                templates=self._builtin_templates(),
                seed=seed,
                folder=self.rounds_dir(),
                policy=model if needs_model else None,
                tokenizer=getattr(module, "tokenizer", None),
                step=trainer.global_step if trainer is not None else 0,
                rank=trainer.global_rank if trainer is not None else 0,
                world=world,
                barrier=trainer.strategy.barrier if world > 1 else None,
            )
        if out is None:  # round 0 from the gold judgments
            records = self._builtin_records("train", int(b.get("n_train", 0)))
            prefs: list[PreferenceRecord] = []
            if self.preference:
                from cj2.data.tasks import build_preference_records

                prefs = build_preference_records(items, self._builtin_templates(), seed=seed)
            info: dict[str, Any] = {"metrics": {}, "stats": {"first": "gold", "records": len(records)}}
        else:
            records, prefs, info = out
            if needs_model and hasattr(module, "add_generated_tokens"):
                # the policy's own draws count toward the run's processed-token budget, once per round
                module.add_generated_tokens(int(info["stats"].get("tokens", 0)), key=f"rft_round{r}")
        if not (prefs if self.preference else records) and self._rft is not None:
            # nothing passed (an early policy may write no usable judgment): train on the last round's data
            log.warning(
                "RFT round %d kept no candidate; training goes on with round %s's data", r, self._round
            )
            info = {**info, "stats": {**info["stats"], "reused_round": self._round}}
            records, prefs = self._rft
        self._rft = (records, prefs)
        self._round = r
        entry = {"round": r, "step": trainer.global_step if trainer is not None else 0, **info["stats"]}
        rounds = [e for e in self.stats.get("rft_rounds", []) if e["round"] != r] + [entry]
        self.stats["rft_rounds"] = sorted(rounds, key=lambda e: e["round"])
        metrics = {
            "rft/round": float(r),
            **{k: v for k, v in info["metrics"].items() if k.startswith("rft/")},
        }
        self.stats["rft"] = info["stats"]
        flat = {"rounds": self.rft.rounds, **info["metrics"]}
        for entry in rounds:  # every round's headline numbers, for metrics.json
            for key in ROUND_HEADLINE:
                if key in entry:
                    flat[f"rft/round{entry['round']}/{key}"] = entry[key]
        self.stats["rft_metrics"] = flat
        if trainer is not None and trainer.loggers:
            numbers = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
            for lg in trainer.loggers:
                lg.log_metrics(numbers, step=trainer.global_step)
        log.info("RFT round %d at step %s: %s", r, trainer.global_step if trainer else 0, metrics)
        self._encode_train()

    def _collate(self, preference: bool) -> _Collate:
        return _Collate(JudgeCollator(self.tokenizer.pad_token_id, self.pad_to_multiple_of), preference)

    def train_dataloader(self) -> DataLoader:
        if self.semi_online:
            epoch = self.trainer.current_epoch if self.trainer is not None else 0
            r = self._round_of_epoch(epoch)
            if self._round != r:
                self._build_round(r)
        assert self.train_set is not None
        samples = self.train_set.samples
        if self.preference:
            lengths = [len(c) + len(r) for c, r in samples]
            resp = [c.n_response_tokens for c, _ in samples]  # sequence DPO normalises per pair
            verdict = [False for _ in samples]
            weights = None
        else:
            lengths = [len(s) for s in samples]
            resp = [s.n_response_tokens for s in samples]
            verdict = [s.verdict_index >= 0 for s in samples]
            weights = [s.weight for s in samples]
        world = self.trainer.world_size if self.trainer is not None else 1
        rank = self.trainer.global_rank if self.trainer is not None else 0
        ids = [(s[0] if self.preference else s).id for s in samples]
        self._train_sampler = StepBatchSampler(
            lengths,
            resp,
            verdict,
            batch_size=self.batch_size,
            accumulate=self.accumulate,
            seed=self.seed,
            group_by_length=self.group_by_length,
            rank=rank,
            world_size=world,
            weights=weights,
            groups=self._pair_groups(ids),
        )
        sampler: Any = self._train_sampler
        if self.semi_online and self.rft.round_steps:
            sampler = _RoundSampler(self._train_sampler, self.rft.round_steps, self.accumulate)
            sampler.set_epoch(self.trainer.current_epoch if self.trainer is not None else 0)
        if self._resume is not None:
            sampler.resume(*self._resume)
            self._resume = None
        collate = self._collate(self.preference)
        if self._use_packing():
            collate = _Collate(PackedCollator(self.tokenizer.pad_token_id, self.pad_to_multiple_of), False)
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
        )

    def _use_packing(self) -> bool:
        """``packing`` resolved against the model's attention kernel
        (:func:`cj2.data.packing.resolve_packing`)."""
        module = self.trainer.lightning_module if self.trainer is not None else None
        config = getattr(getattr(module, "model", None), "config", None)
        packed = resolve_packing(self.packing, getattr(config, "_attn_implementation", None))
        if packed and self.preference:
            if self.packing is True or str(self.packing).lower() == "true":
                raise ValueError(
                    "data.packing=true cannot train loss=dpo_seq, whose sequence log-probs need one "
                    "sequence per row; use data.packing=auto or false"
                )
            packed = False
        self.packed = packed
        return packed

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None
        indices = list(range(len(self.val_set)))
        if self.trainer is not None and self.trainer.world_size > 1:
            world, rank = self.trainer.world_size, self.trainer.global_rank
            # every rank needs at least one batch; with fewer samples than ranks the last one is repeated
            indices = (indices + indices[-1:] * max(0, world - len(indices)))[rank::world]
        b = self.eval_batch_size
        batches = [indices[s : s + b] for s in range(0, len(indices), b)]
        return DataLoader(
            self.val_set, batch_sampler=batches, collate_fn=self._collate(False), num_workers=self.num_workers
        )

    # ---------------------------------------------------------------- resume
    def mark_consumed(self, position: tuple[int, int]) -> None:
        epoch, index = position
        self._consumed = (int(epoch), int(index) + 1)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"epoch": self._consumed[0], "consumed": self._consumed[1]}
        if self.stats.get("rft_rounds"):  # the rounds' headline numbers, for a resumed run's metrics.json
            keys = ("round", "step", "prompts", "kept", *ROUND_HEADLINE, "records")
            state["rft_rounds"] = [{k: e[k] for k in keys if k in e} for e in self.stats["rft_rounds"]]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._resume = (int(state["epoch"]), int(state["consumed"]))
        self._consumed = self._resume
        if state.get("rft_rounds"):
            self.stats["rft_rounds"] = [dict(e) for e in state["rft_rounds"]]


class _nothing:
    """A context manager that yields None (no model to gather)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


class DataPositionCallback(L.Callback):
    """Records which micro-batch was trained last, so a checkpoint resumes at the next one."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        dm = trainer.datamodule
        if isinstance(dm, JudgeDataModule) and "position" in batch:
            dm.mark_consumed(batch["position"])
