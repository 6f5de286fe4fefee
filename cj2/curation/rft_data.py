"""RFT training data for a training run: ``data.rejection`` (arXiv 2507.09104, Sec. 3.2 Eq. 3, Sec. 5.1).

The built-in training items are judged by a generator with ``draws`` candidates per prompt and the kept
candidates of the first ``m`` replace the gold judgments. :class:`BuiltinRFT` is what the training run
hands to its DataModule (``cj2.train`` builds it from ``data.rejection``), so the data layer never imports
curation.

* **Offline** (a generator such as the ``simulated`` teacher, ``rounds: null``): drawn once before training
  and cached; an arm with ``M`` candidates uses the first ``M`` (nested subsets: M=1 is sample 0, M=4
  samples 0-3), so the arms of an M sweep differ only in M.
* **The policy as the sampler** (``generator.backend: policy``): the model being trained writes the
  candidates, in-process, through :class:`~cj2.generation.hf.HFSampler` (under FSDP2 with the weights
  gathered on every rank, as the in-loop evaluations do; each rank draws its share of the shards, then
  every rank reads the merged draws).
* **Semi-online rounds** (``rounds: R``, ``round_steps: K``): round 0 is the ``first`` data (``gold``: the
  built-in gold judgments; ``teacher``: rejection sampling with the ``teacher`` generator; ``policy``: the
  initial weights), and every K optimizer steps the data is drawn again with the current weights (rounds
  1 .. R-1; after the last round training goes on with its data). Each round's candidates are cached in
  the run folder (``rft_rounds/round_<r>``), so a run killed inside a round's sampling and resumed from its
  last checkpoint redraws only the shards that were not listed yet.

The ``rejection`` mapping (``conf/data/builtin.yaml``); the drawing and selection keys are read by
:class:`~cj2.curation.settings.RejectionSettings`::

    m: null | M            # null: off (the gold judgments of the built-in tasks)
    draws: 8               # candidates drawn once per prompt; M <= draws
    max_keep: null         # keep at most this many passing candidates per prompt
    weight: uniform        # or inverse_kept (TrainRecord.weight = 1/kept)
    filter: outcome        # outcome (the verdict, the paper's) | faithful (and its stated reasons)
    adaptive: {enabled: false, max_failures: null, drop_all_pass: false}
    generator: {backend: simulated, ...}     # any cj2.generation config, or {backend: policy, batch_size}
    sampling: {temperature: 1.0, max_new_tokens: 512}
    stop_on_verdict: true
    shard_size: 64
    seed: null             # null: data.builtin.seed
    cache_dir: null        # null: $CJ2_CACHE_DIR/curation
    rounds: null | R       # semi-online rounds
    round_steps: K         # optimizer steps per round
    first: gold            # round 0: gold | teacher | policy
    teacher: {backend: simulated, ...}       # the generator of first=teacher
    round_prompts: null    # prompts drawn per round (null: every training item; N: a rotating slice)
    pair_orders: false     # keep a question's judgments only where every order of it has one kept
    fallback: none         # none | gold: a prompt that lost its data trains on its gold judgment instead

``pair_orders`` and ``fallback`` shape what a draw keeps, per question (both orders of a built-in question
under ``data.builtin.both_orders``). With ``pair_orders`` a judge that wins one order of a question and loses
the other (a letter preference, not a judgment) keeps neither: the both-orders condition of J1's consistency
reward (arXiv 2505.10320) applied to rejection sampling. ``fallback: gold`` trains every prompt that lost its
data (none of its candidates passed, or under ``pair_orders`` its question's other order failed) on its
gold judgment (and its gold preference pair under ``loss=dpo``): the built-in tasks' computed truth written
out, in the spirit of STaR's rationalization (arXiv 2203.14465), with the gold judgment itself where STaR has
the model write a rationale given the answer. The round then trains on the policy's own judgments where they
are right and on gold ones where it failed, instead of only on what it already gets right. A prompt left out
by ``drop_all_pass`` did not fail and gets no gold. Counted in the round's stats (``paired_dropped``: kept
judgments left out because the other order failed; ``gold_fallback``: prompts given their gold judgment;
``records``: what the round trains on).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cj2.curation.settings import RejectionSettings, default_cache_root, sampling_params
from cj2.data.schema import PairwiseItem, PreferenceRecord, TrainRecord, pair_key
from cj2.generation import LazySampler

log = logging.getLogger(__name__)

_KEYS = (
    *RejectionSettings.KEYS,
    "generator",
    "sampling",
    "cache_dir",
    "seed",
    "rounds",
    "round_steps",
    "first",
    "teacher",
    "round_prompts",
    "pair_orders",
    "fallback",
)
FALLBACK = ("none", "gold")
FIRST = ("gold", "teacher", "policy")
POLICY = "policy"
_POLICY_KEYS = ("backend", "batch_size", "verdict_check_every", "share_prefill", "attention")


def rft_metrics(stats: Mapping[str, Any], draws: int, prefix: str = "rft") -> dict[str, Any]:
    """The flat numbers a training run reports for its RFT data (``metrics.json`` keys)."""
    flawed = stats.get("flawed") or {}
    return {
        f"{prefix}/draws": draws,
        f"{prefix}/prompts": stats["prompts"],
        f"{prefix}/kept": stats["kept"],
        f"{prefix}/keep_rate": stats["keep_rate"],
        f"{prefix}/pass_at_m": stats["pass_at_m"],
        f"{prefix}/parse_rate": stats["parse_rate"],
        f"{prefix}/zero_pass": stats["zero_pass"],
        f"{prefix}/spurious_share": stats.get("spurious_share"),
        f"{prefix}/draws_saved": stats.get("draws_saved"),
        f"{prefix}/kept_flawed_rate": flawed.get("kept_flawed_rate"),
    }


def _policy_sampler(model: Any, tokenizer: Any, config: Mapping[str, Any]) -> Callable[[], Any]:
    """A factory of the :class:`~cj2.generation.hf.HFSampler` over the model being trained (built only when
    something must be drawn: a round read back from the cache decodes nothing)."""

    def build() -> Any:
        from cj2.generation.hf import HFSampler

        kwargs = {k: config[k] for k in _POLICY_KEYS[1:] if k in config}
        return HFSampler(model, tokenizer, **kwargs)

    return build


class BuiltinRFT:
    """The RFT data of a training run's built-in items, from its ``data.rejection`` section (module
    docstring). ``data(round, items, ...)`` gives ``(records, preference_pairs, info)`` of a round; the
    DataModule decides when a round starts."""

    def __init__(self, rejection: Mapping[str, Any]):
        from cj2.runtime import to_plain

        cfg = to_plain(dict(rejection))
        unknown = sorted(set(cfg) - set(_KEYS))
        if unknown:
            raise ValueError(f"data.rejection: unknown key(s) {unknown}; expected some of {sorted(_KEYS)}")
        self.cfg = cfg
        self.settings = RejectionSettings.from_config(cfg, where="data.rejection")
        self.generator = dict(cfg.get("generator") or {"backend": "simulated"})
        self.policy = self.generator.get("backend") == POLICY
        if self.policy:
            extra = sorted(set(self.generator) - set(_POLICY_KEYS) - {"sampling", "name", "description"})
            if extra:
                raise ValueError(
                    f"data.rejection.generator: backend=policy samples with the model being trained; "
                    f"{extra} do not apply (it takes {list(_POLICY_KEYS[1:])})"
                )
        rounds = cfg.get("rounds")
        self.first = str(cfg.get("first") or "gold")
        if self.first not in FIRST:
            raise ValueError(f"data.rejection.first={self.first!r}; expected one of {list(FIRST)}")
        if rounds is None:
            # the policy as a one-shot sampler: its initial weights draw the data once
            self.rounds = 1 if self.policy else 0
            self.round_steps: int | None = None
            if self.policy:
                self.first = POLICY
        else:
            self.rounds = int(rounds)
            if self.rounds < 1:
                raise ValueError(f"data.rejection.rounds={rounds}: expected >= 1 or null")
            steps = cfg.get("round_steps")
            if self.rounds > 1 and (steps is None or int(steps) < 1):
                raise ValueError(
                    "data.rejection.rounds > 1 needs data.rejection.round_steps >= 1 (steps per round)"
                )
            self.round_steps = None if steps is None else int(steps)
        self.round_prompts = None if cfg.get("round_prompts") is None else int(cfg["round_prompts"])
        self.pair_orders = bool(cfg.get("pair_orders", False))
        if self.pair_orders and self.round_prompts is not None and self.round_prompts % 2:
            raise ValueError(
                f"data.rejection.pair_orders: round_prompts={self.round_prompts} splits a question's two "
                "orders between rounds; give an even number"
            )
        self.fallback = str(cfg.get("fallback") or "none")
        if self.fallback not in FALLBACK:
            raise ValueError(f"data.rejection.fallback={self.fallback!r}; expected one of {list(FALLBACK)}")
        if self.first == "teacher":
            self.teacher = dict(cfg.get("teacher") or {"backend": "simulated"})
            if self.teacher.get("backend") == POLICY:
                raise ValueError("data.rejection.teacher: the teacher is another generator than the policy")

    @classmethod
    def from_config(cls, rejection: Mapping[str, Any] | None) -> BuiltinRFT | None:
        """``None`` when ``rejection`` is missing or its ``m`` is null (RFT off)."""
        if not rejection or rejection.get("m") is None:
            return None
        return cls(rejection)

    # ------------------------------------------------------------------------------------------
    @property
    def semi_online(self) -> bool:
        """Whether the data is drawn during training (by round), not once before it."""
        return self.rounds > 0

    @property
    def needs_model(self) -> bool:
        """Whether some round is drawn by the model being trained."""
        return self.semi_online and (self.policy or self.first == POLICY)

    def round_items(self, r: int, items: Sequence[PairwiseItem]) -> list[PairwiseItem]:
        """The prompts of round ``r``: every item, or with ``round_prompts`` a slice that rotates."""
        n = self.round_prompts
        if n is None or n >= len(items):
            return list(items)
        start = (r * n) % len(items)
        return [items[(start + k) % len(items)] for k in range(n)]

    def _seed(self, seed: int) -> int:
        return int(self.cfg["seed"]) if self.cfg.get("seed") is not None else seed

    def offline(
        self, items: Sequence[PairwiseItem], *, templates: str | Sequence[str], seed: int
    ) -> tuple[list[TrainRecord], list[PreferenceRecord], dict[str, Any]]:
        """The data drawn once before training by the configured generator (``rounds: null``)."""
        if self.policy:
            raise ValueError(
                "generator.backend=policy draws during training (DataModule rounds), not offline"
            )
        root = Path(self.cfg["cache_dir"]) if self.cfg.get("cache_dir") else default_cache_root()
        return self._draw(
            items,
            self.generator,
            LazySampler(self.generator),
            templates=templates,
            template_seed=seed,
            sample_seed=self._seed(seed),
            folder_root=root / "rejection",
            name="rft",
        )

    def round_data(
        self,
        r: int,
        items: Sequence[PairwiseItem],
        *,
        templates: str | Sequence[str],
        seed: int,
        folder: str | Path,
        policy: Any = None,
        tokenizer: Any = None,
        step: int = 0,
        rank: int = 0,
        world: int = 1,
        barrier: Callable[[], Any] | None = None,
    ) -> tuple[list[TrainRecord], list[PreferenceRecord], dict[str, Any]] | None:
        """Round ``r``'s data (``None`` for a gold round 0: the caller uses the gold records). ``policy``: the
        model being trained, with its current (gathered) weights, and its ``tokenizer``: the candidates are
        drawn with a :class:`~cj2.generation.hf.HFSampler` over it; ``step``: the optimizer step the round
        starts at (in the cache key with ``r``). With ``world > 1`` each rank
        draws the shards ``index % world == rank``, waits at ``barrier``, then reads the merged draws."""
        if r == 0 and self.first == "gold":
            return None
        round_items = self.round_items(r, items)
        if r == 0 and self.first == "teacher":
            config, sampler = self.teacher, LazySampler(self.teacher)
        elif self.policy or (r == 0 and self.first == POLICY):
            if policy is None:
                raise ValueError("a policy round needs the model being trained (policy=)")
            config = dict(self.generator) if self.policy else {"backend": POLICY}
            sampler = _policy_sampler(policy, tokenizer, config)
        else:  # a fixed generator, redrawn every round with new seeds
            config, sampler = self.generator, LazySampler(self.generator)
        keyed = {**config, "round": r, "step": int(step)}  # the weights a round samples with
        name = f"rft_round{r}"
        root = Path(folder) / f"round_{r}"
        kwargs = dict(
            templates=templates,
            template_seed=seed,
            sample_seed=self._seed(seed) + r,
            folder_root=root,
            name=name,
        )
        if world > 1:
            self._draw(round_items, keyed, sampler, worker=(rank, world), **kwargs)
            if barrier is not None:
                barrier()
        return self._draw(round_items, keyed, sampler, **kwargs)

    def _draw(
        self,
        items: Sequence[PairwiseItem],
        generator_config: Mapping[str, Any],
        sampler: Any,
        *,
        templates: str | Sequence[str],
        template_seed: int,
        sample_seed: int,
        folder_root: Path,
        name: str,
        worker: tuple[int, int] | None = None,
    ) -> tuple[list[TrainRecord], list[PreferenceRecord], dict[str, Any]]:
        from cj2.curation.pipeline import check_simulated
        from cj2.curation.prompts import build_prompts

        if not items:
            raise ValueError(
                "data.rejection.m needs the built-in tasks as prompts (data.builtin.n_train > 0); for "
                "your own data run `python -m cj2.curate` and train on its train.jsonl"
            )
        names = [templates] if isinstance(templates, str) else list(templates)
        prompts = build_prompts(items, names, seed=template_seed)
        check_simulated(prompts, generator_config)
        params = sampling_params({"sampling": self.cfg.get("sampling") or {}}, sample_seed)
        settings = self.settings if worker is None else dataclasses.replace(self.settings, progress=False)
        draws = settings.sample(
            prompts,
            sampler,
            params,
            folder_root=folder_root,
            generator_config=generator_config,
            name=name,
            worker=worker,
        )
        if worker is not None:
            return [], [], {}
        sel = settings.select(draws)
        if self.pair_orders or self.fallback == "gold":
            sel = self._by_question(sel, items, names, template_seed)
        info = {
            "stats": sel.stats,
            "metrics": {
                "M": sel.stats["M"],
                "filter": settings.filter,
                **rft_metrics(sel.stats, draws.draws),
            },
            "folder": str(draws.folder),
            "cache_hit": draws.cache_hit,
        }
        return sel.records, sel.preferences, info

    def _by_question(
        self, sel: Any, items: Sequence[PairwiseItem], names: Sequence[str], template_seed: int
    ) -> Any:
        """``sel`` with ``pair_orders`` and ``fallback`` applied (module docstring), counted in its stats.

        A prompt *failed* when none of its candidates passed (``sel.zero_pass``); one left out by
        ``drop_all_pass`` did not fail (every candidate passed) and gets no gold. A question is *whole* when
        none of its orders failed."""
        from cj2.data.tasks import build_preference_records, build_records
        from cj2.data.templates import get_template

        orders: dict[str, set[str]] = {}  # question -> the prompt ids of its orders in this draw
        for it in items:
            orders.setdefault(pair_key(it.id), set()).add(it.id)
        if self.pair_orders:
            lone = sorted(q for q, ids in orders.items() if len(ids) < 2)
            if lone:
                raise ValueError(
                    f"data.rejection.pair_orders: {len(lone)} question(s) of this draw hold one order only "
                    f"(first: {lone[0]!r}); it needs data.builtin.both_orders=true and an even "
                    "data.rejection.round_prompts and data.builtin.n_train"
                )
        failed = {z["prompt_id"] for z in sel.zero_pass}
        whole = {q for q, ids in orders.items() if not ids & failed}
        records, preferences, dropped = sel.records, sel.preferences, 0
        if self.pair_orders:
            records = [r for r in sel.records if pair_key(r.meta["prompt_id"]) in whole]
            preferences = [p for p in sel.preferences if pair_key(p.meta["prompt_id"]) in whole]
            dropped = len(sel.records) - len(records)
        gold: list[TrainRecord] = []
        gold_pairs: list[PreferenceRecord] = []
        if self.fallback == "gold":
            # the prompts that failed, and under pair_orders every order of a question that is not whole
            lost = [
                it for it in items if it.id in failed or (self.pair_orders and pair_key(it.id) not in whole)
            ]
            # the pairwise templates only, as the prompts were built (the gold judgment of the same template)
            pairwise = [n for n in names if get_template(n).kind == "pairwise"]
            mark = {"stage": f"{sel.name}_gold", "status": "gold"}
            for rec in build_records(lost, pairwise, seed=template_seed):
                rec.meta.update({**mark, "prompt_id": rec.id})
                gold.append(rec)
            for pref in build_preference_records(lost, pairwise, seed=template_seed):
                pref.meta.update({**mark, "prompt_id": pref.id})
                gold_pairs.append(pref)
        stats = {
            **sel.stats,
            "questions": len(orders),
            "questions_both_kept": len(whole),
            "paired_dropped": dropped,
            "gold_fallback": len(gold),
            "records": len(records) + len(gold),
        }
        return dataclasses.replace(
            sel, records=records + gold, preferences=preferences + gold_pairs, stats=stats
        )


def builtin_rft(
    items: Sequence[PairwiseItem],
    rejection: Mapping[str, Any],
    *,
    templates: str | Sequence[str] = ("cj2_short",),
    seed: int = 0,
) -> tuple[list[TrainRecord], list[PreferenceRecord], dict[str, Any]]:
    """``(records, preference_pairs, info)`` drawn once for the built-in training ``items`` (module
    docstring). ``seed`` is the data seed: it draws each item's template and seeds the candidates, so every
    arm and training seed of a sweep shares the same draws. ``info`` holds ``stats`` (the selection
    statistics), ``metrics`` (:func:`rft_metrics`) and ``folder`` (the cached candidate shards)."""
    return BuiltinRFT(rejection).offline(items, templates=templates, seed=seed)
