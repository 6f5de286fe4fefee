"""Closed-book probe: does the judge know the truth it has to state, or does it copy a candidate?

A ``cj2_check`` judge states the truth with both candidate answers in view, and every training judgment's
truth equals one of the two candidates: copying one is always an available shortcut, and a wrong stated
truth can mean two different things. Either the model does not know the answer (a ceiling no judge
training on this data lifts), or it knows it and copied the wrong candidate anyway (what a faithfulness
reward or better data can fix). This probe tells them apart on items whose truth is computed: it asks each
question alone ("closed book", no candidates, greedy), reads the answer with the faithfulness reader's
truth check (:func:`cj2.evaluation.faithfulness.check_truth`: the answer must state the truth, not the wrong
candidate's value), and, given the same items' judgments, crosses the two per judgment:

* ``closed_book_acc``: the question answered alone, right (overall and per family, Wilson interval);
* ``truth_acc``: the judgment's stated truth right (as :mod:`cj2.evaluation.faithfulness`); this and the
  three below are over judgments, their 95% intervals from resampling whole questions (both orders of a
  question share one recall);
* ``knows_but_misstates``: share of judgments whose stated truth is wrong although the model answers the
  question right alone (copied against its own knowledge);
* ``misstates_unknown``: share whose stated truth is wrong and whose closed-book answer is wrong too
  (the model does not know it);
* ``truth_ceiling``: share where either is right, an estimate of how far the stated truth could rise if the
  judge used all it knows.

Items without a computed truth get no number, and items whose answer is a text rather than a value (an
instruction-following response: its truth is a constraint, not an answer to recall) are skipped; both are
counted (``n_no_truth``, ``n_not_a_value``), never guessed. ``python -m cj2.evaluation.closed_book MODEL``
runs it on built-in items (README, On-policy).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cj2.data.schema import pair_key
from cj2.evaluation.faithfulness import _get, check_judgment, check_truth, reference_of
from cj2.generation.base import Message, Sampler, SamplingParams
from cj2.metrics.bootstrap import binomial_ci, bootstrap_ci

__all__ = [
    "CLOSED_BOOK_SUFFIX",
    "ClosedBook",
    "closed_book_prompt",
    "closed_book_rows",
    "closed_book_metrics",
    "cross_judgments",
]

CLOSED_BOOK_SUFFIX = "\nAnswer in one short sentence."
"""Appended to the question: keeps an instruct model's answer short enough to read its value."""


def closed_book_prompt(item: Any, suffix: str = CLOSED_BOOK_SUFFIX) -> list[Message]:
    """The item's question alone, as a one-turn chat (no candidates, no judge template). A small model's
    closed-book answers depend on the phrasing (``suffix``): compare a few before reading much into one."""
    return [{"role": "user", "content": str(_get(item, "question")) + suffix}]


@dataclass(frozen=True)
class ClosedBook:
    """One question answered alone: ``ok`` is ``None`` where the reader cannot tell (counted apart)."""

    id: str
    family: str
    answer: str
    ok: bool | None
    why: str


def _split(items: Sequence[Any]) -> tuple[list[Any], Counter]:
    keep, skipped = [], Counter()
    for item in items:
        ref = reference_of(item)
        if ref is None:
            skipped["n_no_truth"] += 1
        elif not ref.styled:
            skipped["n_not_a_value"] += 1
        else:
            keep.append((item, ref))
    return keep, skipped


def closed_book_rows(
    sampler: Sampler, items: Sequence[Any], *, max_new_tokens: int = 48, suffix: str = CLOSED_BOOK_SUFFIX
) -> tuple[list[ClosedBook], Counter]:
    """Each probe-able item's question answered greedily by ``sampler``, and the counts of skipped items."""
    keep, skipped = _split(items)
    if not keep:
        return [], skipped
    params = SamplingParams(max_new_tokens=max_new_tokens)
    ids = [str(_get(it, "id")) for it, _ in keep]
    samples = sampler.generate([closed_book_prompt(it, suffix) for it, _ in keep], 1, params, keys=ids)
    rows = []
    for (_, ref), item_id, (sample,) in zip(keep, ids, samples):
        ok, why = check_truth(sample.text, ref)
        rows.append(ClosedBook(item_id, ref.family, sample.text, ok, why))
    return rows, skipped


def _rate(k: int, n: int, prefix: str, out: dict[str, float]) -> None:
    if n:
        out[prefix] = k / n
        out[prefix + "_ci_low"], out[prefix + "_ci_high"] = binomial_ci(k, n)
        out[prefix + "_n"] = float(n)


CROSSED = ("truth_acc", "knows_but_misstates", "misstates_unknown", "truth_ceiling")
"""The per-judgment rates of the module docstring."""


def cross_judgments(
    rows: Sequence[ClosedBook], judgments: Sequence[tuple[Any, str]]
) -> list[tuple[ClosedBook | None, bool | None]]:
    """Each judgment's ``(closed-book row of its question, stated truth right)``, in the judgments' order;
    a judgment of a question that has no row gets ``None`` as its row. ``judgments``: ``(item as shown to
    the judge, judgment text)``."""
    by_id = {r.id: r for r in rows}
    out = []
    for shown, text in judgments:
        f = check_judgment(text, shown)
        out.append((by_id.get(pair_key(str(_get(shown, "id")))), None if f is None else f.truth_ok))
    return out


def _clustered_rate(questions: Mapping[str, Counter], name: str, prefix: str, out: dict[str, float]) -> None:
    """A rate over judgments with a 95% interval from resampling whole questions: a question's two orders
    share one recall, so a Wilson interval over judgments would count each piece of evidence twice."""
    counts = torch.tensor([[c[name], c["n"]] for c in questions.values()], dtype=torch.float64)
    n = counts[:, 1].sum().item()
    if not n:
        return
    out[prefix] = counts[:, 0].sum().item() / n
    out[prefix + "_ci_low"], out[prefix + "_ci_high"] = bootstrap_ci(
        counts, lambda r: r[..., 0].sum(1) / r[..., 1].sum(1)
    )
    out[prefix + "_n"] = n


def closed_book_metrics(
    rows: Sequence[ClosedBook],
    crossed: Sequence[tuple[ClosedBook | None, bool | None]] = (),
    *,
    skipped: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """Metrics of the module docstring: ``closed_book_acc`` from ``rows``, the per-judgment rates from
    ``crossed`` (:func:`cross_judgments` of the same questions' judgments; none given: those are absent)."""
    out: dict[str, float] = {}
    fams: dict[str, list[ClosedBook]] = defaultdict(list)
    for r in rows:
        fams[r.family].append(r)
    for fam, group in [("", list(rows))] + sorted(fams.items()):
        suffix = f"/{fam}" if fam else ""
        read = [r for r in group if r.ok is not None]
        _rate(sum(r.ok for r in read), len(read), "closed_book_acc" + suffix, out)
    # per question (both orders of a question are two judgments of one recall): counts by metric
    cross: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for row, truth_ok in crossed:
        if row is None or row.ok is None or truth_ok is None:
            continue
        for key in ("", f"/{row.family}"):
            c = cross[key][row.id]
            c["n"] += 1
            c["truth_acc"] += truth_ok
            c["knows_but_misstates"] += row.ok and not truth_ok
            c["misstates_unknown"] += not row.ok and not truth_ok
            c["truth_ceiling"] += row.ok or truth_ok
    for key, questions in sorted(cross.items()):
        for name in CROSSED:
            _clustered_rate(questions, name, name + key, out)
    for name, n in (skipped or {}).items():
        out[name] = float(n)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m cj2.evaluation.closed_book MODEL [--n N] [--seed S] [--tiers easy] [--template T]
    [--closed-book-model BASE] [--out FILE]``: the closed-book probe on ``N`` built-in validation items
    (both orders judged with ``T``; the questions answered alone by the judge, or by ``BASE``), a per-family
    table on stdout and every number as JSON in ``FILE``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m cj2.evaluation.closed_book", description=main.__doc__)
    p.add_argument("model", help="an exported cj2 judge folder, a HF model folder or 'smollm2_135m'")
    p.add_argument("--n", type=int, default=160, help="built-in items (questions); judged in both orders")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--split", default="validation")
    p.add_argument("--tiers", nargs="+", default=["easy"])
    p.add_argument("--template", default="cj2_check")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-new-tokens", type=int, default=72, help="for the judgments")
    p.add_argument(
        "--closed-book-model",
        default=None,
        help="answer the questions alone with this model instead of the judge (e.g. the judge's base model: "
        "does the judge use what its base model knew?)",
    )
    p.add_argument(
        "--suffix",
        default=CLOSED_BOOK_SUFFIX,
        help=f"appended to each question asked alone (default {CLOSED_BOOK_SUFFIX!r})",
    )
    p.add_argument("--out", type=Path, default=None, help="every number, as JSON")
    p.add_argument("--rows", type=Path, default=None, help="each answer alone and each judgment, as JSONL")
    args = p.parse_args(argv)

    from cj2.data.tasks.generate import generate_items
    from cj2.evaluation.placement import present
    from cj2.judge import Judge

    items = generate_items(args.n, split=args.split, seed=args.seed, tiers=args.tiers)
    judge = Judge.from_pretrained(
        args.model,
        template=args.template,
        batch_size=args.batch_size,
        max_new_tokens=args.max_new_tokens,
        verdict_probs=False,
    )
    answerer = judge
    if args.closed_book_model is not None:
        answerer = Judge.from_pretrained(
            args.closed_book_model, template=args.template, batch_size=args.batch_size, verdict_probs=False
        )
    rows, skipped = closed_book_rows(answerer.sampler, items, suffix=args.suffix)
    probed = {r.id for r in rows}
    shown = [present(it, sw) for it in items if it.id in probed for sw in (False, True)]
    results = judge.judge_items(shown)
    judgments = [(one, r.output) for one, r in zip(shown, results)]
    crossed = cross_judgments(rows, judgments)
    metrics = closed_book_metrics(rows, crossed, skipped=skipped)
    fams = sorted({r.family for r in rows})
    print(
        f"{'family':18s} {'closed book':>12s} {'stated truth':>13s} {'knows, misstates':>17s} "
        f"{'does not know':>14s} {'ceiling':>8s}"
    )
    for fam in [""] + fams:
        s = f"/{fam}" if fam else ""
        cells = [metrics.get(k + s) for k in ("closed_book_acc", *CROSSED)]
        print(
            f"{fam or 'all':18s} "
            + " ".join(
                f"{'-' if v is None else f'{v:.2f}':>{w}s}" for v, w in zip(cells, (12, 13, 17, 14, 8))
            )
        )
    print(f"skipped: {dict(skipped) or 'none'}")
    if args.out is not None:
        args.out.write_text(json.dumps(metrics, indent=1, sort_keys=True))
    if args.rows is not None:
        from cj2.data.io import write_jsonl

        by_id = {it.id: it for it in items}
        judged = defaultdict(list)  # question id -> its judgments, as given then swapped
        for (_, text), (row, truth_ok) in zip(judgments, crossed):
            judged[row.id].append({"judgment": text, "truth_ok": truth_ok})
        write_jsonl(
            args.rows,
            [
                {
                    "id": r.id,
                    "family": r.family,
                    "question": by_id[r.id].question,
                    "truth": by_id[r.id].meta["truth"],
                    "alone": r.answer,
                    "alone_ok": r.ok,
                    "why": r.why,
                    "judgments": judged[r.id],
                }
                for r in rows
            ],
        )


if __name__ == "__main__":
    main()
