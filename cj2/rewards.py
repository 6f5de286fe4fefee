"""The judge's verifiable rewards, as plain functions, for cj2's own GRPO and for existing RL engines.

One rule, three call shapes:

* **verdict reward**: 1 when the judgment's verdict (:func:`cj2.verdict.parse_verdict` in the record's
  format) equals the gold label, 0 when it differs, and 0 (counted as *malformed*) when no valid verdict
  can be read;
* **consistency reward** (J1, Whitehouse et al., 2025, arXiv 2505.10320): paid only when *both orders* of a
  pair are judged right. Judgment ``j`` of one order is paired with judgment ``j`` of the other order of the
  same question (same ``pair_id``); an unpaired judgment gets no consistency term;
* optional ``-spurious_penalty`` for a right verdict whose stated reasons are wrong, through a pluggable
  check ``(judgment_text, record) -> bool | None`` (``None``: cannot tell, no penalty).

:func:`judgment_rewards` is what ``loss=grpo`` (:mod:`cj2.module`) calls. :func:`trl_verdict_reward` and
:func:`trl_consistency_reward` have the signature TRL's ``GRPOTrainer(reward_funcs=[...])`` calls
(``prompts``, ``completions``, ``completion_ids`` and every dataset column as keyword lists; a list of floats
back, ``None`` for "not applicable"). :func:`compute_score` has verl's ``custom_reward_function`` signature
(``data_source, solution_str, ground_truth, extra_info``) and :func:`compute_score_batch` that of verl's
batch reward manager (lists of each), which alone can pay the consistency term. :func:`export_rl_prompts`
writes the judge prompts with their gold labels as an HF dataset (TRL's conversational ``prompt`` column)
and as verl's parquet (``data_source, prompt, ability, reward_model, extra_info``).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cj2.data.schema import SWAP_SUFFIX, pair_key
from cj2.verdict import FORMATS, parse_verdict

log = logging.getLogger(__name__)

SpuriousCheck = Callable[[str, Any], "bool | None"]
DEFAULT_SPURIOUS_CHECK = "cj2.evaluation.faithfulness:is_spurious"
DATA_SOURCE = "cj2_judge"


def verdict_reward(text: str, gold: str, format: str) -> float | None:
    """1.0 when the verdict read from ``text`` in ``format`` is ``gold``, 0.0 when another, ``None`` when no
    valid verdict can be read (malformed; callers pay 0 and count it)."""
    if format not in FORMATS or format == "none":
        raise ValueError(f"verdict format {format!r}: expected one of {[f for f in FORMATS if f != 'none']}")
    got = parse_verdict(text, format)
    if got is None:
        return None
    return 1.0 if got == gold else 0.0


def _pair_partners(pair_ids: Sequence[Hashable], orders: Sequence[Hashable]) -> list[int | None]:
    """For each position, the position of the judgment it is paired with in the other order: the same
    ``pair_id``, the other order, the same rank among its order's judgments; ``None`` when there is none
    (one order only, or more than two orders under one pair id)."""
    rank: dict[tuple[Hashable, Hashable], int] = defaultdict(int)
    where: dict[tuple[Hashable, Hashable, int], int] = {}
    orders_of: dict[Hashable, set] = defaultdict(set)
    ranks = []
    for i, (p, o) in enumerate(zip(pair_ids, orders)):
        r = rank[(p, o)]
        rank[(p, o)] += 1
        where[(p, o, r)] = i
        orders_of[p].add(o)
        ranks.append(r)
    out: list[int | None] = []
    for p, o, r in zip(pair_ids, orders, ranks):
        others = orders_of[p] - {o}
        out.append(where.get((p, next(iter(others)), r)) if len(others) == 1 else None)
    return out


@dataclass
class Rewards:
    """Per-judgment rewards and their parts (lists aligned with the judgments)."""

    reward: list[float]
    correct: list[bool]
    malformed: list[bool]
    consistent: list[bool | None]  # None: no partner judgment in the other order
    spurious: list[bool | None] = field(default_factory=list)  # None: not checked or cannot tell

    def summary(self) -> dict[str, float]:
        n = max(len(self.reward), 1)
        paired = [c for c in self.consistent if c is not None]
        out = {
            "correct": sum(self.correct) / n,
            "malformed": float(sum(self.malformed)),
            "malformed_rate": sum(self.malformed) / n,
        }
        if paired:
            out["consistent"] = sum(paired) / len(paired)
        checked = [s for s in self.spurious if s is not None]
        if checked:
            out["spurious"] = sum(checked) / len(checked)
        return out


def judgment_rewards(
    texts: Sequence[str],
    golds: Sequence[str],
    formats: Sequence[str],
    *,
    pair_ids: Sequence[Hashable] | None = None,
    orders: Sequence[Hashable] | None = None,
    consistency_weight: float = 1.0,
    spurious: Sequence[bool | None] | None = None,
    spurious_penalty: float = 0.0,
) -> Rewards:
    """``verdict + consistency_weight * both-orders-right - spurious_penalty * spurious`` per judgment.

    ``pair_ids``/``orders`` identify each judgment's question and order (module docstring for the pairing);
    without them no consistency term is paid. ``spurious[i]`` is the faithfulness check's answer for
    judgment ``i`` (``True``: wrong reasons); the penalty applies to right verdicts flagged ``True`` only.
    """
    n = len(texts)
    if not (len(golds) == len(formats) == n):
        raise ValueError(f"texts, golds and formats differ in length: {n}, {len(golds)}, {len(formats)}")
    raw = [verdict_reward(t, g, f) for t, g, f in zip(texts, golds, formats)]
    correct = [r == 1.0 for r in raw]
    malformed = [r is None for r in raw]
    consistent: list[bool | None] = [None] * n
    if pair_ids is not None and orders is not None:
        for i, j in enumerate(_pair_partners(pair_ids, orders)):
            if j is not None:
                consistent[i] = correct[i] and correct[j]
    spur = list(spurious) if spurious is not None else [None] * n
    if len(spur) != n:
        raise ValueError(f"spurious has {len(spur)} entries for {n} judgments")
    reward = [
        float(correct[i])
        + (consistency_weight if consistent[i] else 0.0)
        - (spurious_penalty if spur[i] is True and correct[i] else 0.0)
        for i in range(n)
    ]
    return Rewards(reward, correct, malformed, consistent, spur)


def load_spurious_check(path: str | None) -> SpuriousCheck | None:
    """The check named ``"module:function"``, or ``None`` when ``path`` is empty or its module does not
    exist (a warning is logged: the faithfulness reader is an optional part). A module that exists but
    fails to import, or lacks the function, is an error."""
    if not path:
        return None
    mod_name, sep, fn_name = str(path).partition(":")
    if not sep or not fn_name:
        raise ValueError(f"spurious check {path!r}: expected 'module:function'")
    if _missing(mod_name):
        log.warning("spurious check %s: module %s does not exist; no spurious penalty", path, mod_name)
        return None
    fn = getattr(importlib.import_module(mod_name), fn_name, None)
    if not callable(fn):
        raise ValueError(f"spurious check {path!r}: {mod_name} has no callable {fn_name!r}")
    return fn


def _missing(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is None
    except ModuleNotFoundError:
        return True


# ----------------------------------------------------------------------------------------------------- TRL
def _completion_text(completion: Any) -> str:
    """A TRL completion: a string (standard format) or a list of messages (conversational format)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], Mapping):
        return str(completion[-1].get("content", ""))
    raise TypeError(f"completion of type {type(completion).__name__}: expected a str or a list of messages")


def trl_verdict_reward(
    prompts: Sequence[Any], completions: Sequence[Any], gold: Sequence[str], format: Sequence[str], **kwargs
) -> list[float]:
    """TRL reward function: 1 when the completion's verdict is ``gold``, else 0 (malformed: 0).

    ``gold`` and ``format`` are columns of the dataset :func:`export_rl_prompts` writes; TRL passes every
    column as a keyword list aligned with ``completions``."""
    return [
        float(verdict_reward(_completion_text(c), g, f) or 0.0) for c, g, f in zip(completions, gold, format)
    ]


def trl_consistency_reward(
    prompts: Sequence[Any],
    completions: Sequence[Any],
    gold: Sequence[str],
    format: Sequence[str],
    pair_id: Sequence[str],
    order: Sequence[str],
    **kwargs,
) -> list[float | None]:
    """TRL reward function: 1 when this completion and its partner in the other order (same ``pair_id``,
    same rank among its prompt's completions in this batch) are both right, else 0; ``None`` (TRL: not
    applicable, ignored) when the other order is not in the batch. Both orders reach one batch only when
    the dataset keeps them adjacent and is not shuffled (``GRPOConfig(shuffle_dataset=False)``) and a
    generation batch holds whole pairs."""
    texts = [_completion_text(c) for c in completions]
    r = judgment_rewards(texts, gold, format, pair_ids=pair_id, orders=order, consistency_weight=1.0)
    return [None if c is None else float(c) for c in r.consistent]


# ---------------------------------------------------------------------------------------------------- verl
def compute_score(
    data_source: str, solution_str: str, ground_truth: str, extra_info: Mapping[str, Any] | None = None, **kw
) -> float:
    """verl ``custom_reward_function`` (``custom_reward_function.path=<this file>``,
    ``custom_reward_function.name=compute_score``): the verdict reward of one response; the verdict
    format comes from ``extra_info["format"]`` (written by :func:`export_rl_prompts`)."""
    fmt = (extra_info or {}).get("format")
    if not fmt:
        raise ValueError(
            f"compute_score({data_source!r}): extra_info has no 'format'; export the prompts with "
            "cj2.rewards.export_rl_prompts"
        )
    return float(verdict_reward(solution_str, str(ground_truth), str(fmt)) or 0.0)


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[str],
    extra_infos: Sequence[Mapping[str, Any] | None],
    *,
    consistency_weight: float = 1.0,
    **kw,
) -> list[float]:
    """verl's batch reward manager (``reward_model.reward_manager=batch``): verdict + consistency over the
    whole batch, which holds both orders of a question when the exported pairs stay in one batch (verl
    repeats each prompt ``rollout.n`` times; the ``j``-th response of one order pairs with the ``j``-th of
    the other)."""
    infos = [dict(e or {}) for e in extra_infos]
    for i, e in enumerate(infos):
        if "format" not in e or "pair_id" not in e or "order" not in e:
            raise ValueError(f"batch row {i}: extra_info needs 'format', 'pair_id' and 'order'")
    r = judgment_rewards(
        list(solution_strs),
        [str(g) for g in ground_truths],
        [e["format"] for e in infos],
        pair_ids=[e["pair_id"] for e in infos],
        orders=[e["order"] for e in infos],
        consistency_weight=consistency_weight,
    )
    return r.reward


# -------------------------------------------------------------------------------------------------- export
def rl_rows(records: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per judge prompt with a gold verdict: ``id, prompt (chat messages), gold, format, pair_id,
    order, family``. Records without a verdict (``format="none"``) are left out."""
    rows = []
    for rec in records:
        if rec.verdict is None or rec.format == "none":
            continue
        rows.append(
            {
                "id": rec.id,
                "prompt": [dict(m) for m in rec.messages],
                "gold": str(rec.verdict),
                "format": rec.format,
                "pair_id": pair_key(rec.id),
                "order": "swapped" if rec.id.split("#", 1)[0].endswith(SWAP_SUFFIX) else "original",
                "family": str(rec.meta.get("family", "")),
            }
        )
    return rows


def verl_rows(rows: Sequence[Mapping[str, Any]], *, split: str = "train") -> list[dict[str, Any]]:
    """verl's RL data layout of :func:`rl_rows`: ``data_source``, ``prompt`` (chat messages), ``ability``,
    ``reward_model {style: rule, ground_truth}``, ``extra_info`` (what :func:`compute_score` reads)."""
    return [
        {
            "data_source": DATA_SOURCE,
            "prompt": r["prompt"],
            "ability": "judge",
            "reward_model": {"style": "rule", "ground_truth": r["gold"]},
            "extra_info": {
                "split": split,
                "index": i,
                "id": r["id"],
                "format": r["format"],
                "pair_id": r["pair_id"],
                "order": r["order"],
                "family": r["family"],
            },
        }
        for i, r in enumerate(rows)
    ]


def export_rl_prompts(
    records: Sequence[Any], out_dir: str | Path, *, split: str = "train"
) -> dict[str, Path]:
    """Write ``records``' judge prompts with gold labels to ``out_dir``: ``hf/`` (``datasets.save_to_disk``;
    load with ``datasets.load_from_disk``) and ``<split>.parquet`` in verl's layout. Both keep the records'
    order, so both orders of a question stay adjacent. Returns the two paths."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = rl_rows(records)
    if not rows:
        raise ValueError("no record with a gold verdict to export")
    parquet = out / f"{split}.parquet"
    pq.write_table(pa.Table.from_pylist(verl_rows(rows, split=split)), parquet)
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets comes with the [hub] and [rl] extras
        raise ImportError('the HF dataset export needs `datasets`: pip install "cj2[rl]"') from err
    hf = out / "hf"
    datasets.Dataset.from_list(rows).save_to_disk(str(hf))
    return {"hf": hf, "parquet": parquet}


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m cj2.rewards OUT_DIR [--n N] [--seed S] [--tiers easy] [--templates cj2_check]``: export
    the built-in training prompts, both orders of each question adjacent."""
    import argparse

    from cj2.data.datamodule import JudgeDataModule

    p = argparse.ArgumentParser(prog="python -m cj2.rewards", description=main.__doc__)
    p.add_argument("out_dir")
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tiers", nargs="+", default=["easy"])
    p.add_argument("--templates", nargs="+", default=["cj2_check"])
    a = p.parse_args(argv)
    builtin = {"n_train": a.n, "n_val": 0, "seed": a.seed, "tiers": a.tiers, "templates": a.templates}
    dm = JudgeDataModule(None, builtin={**builtin, "both_orders": True}, seed=a.seed)
    paths = export_rl_prompts(dm.train_records(), a.out_dir)
    print({k: str(v) for k, v in paths.items()})


if __name__ == "__main__":
    main()
