"""Closed-book training rows: built-in training-split questions asked alone (no candidates), as CE-only rows.

The two knowledge experiments of the README's On-policy section add these rows to ``make train`` through
``data.train_files`` (format ``none``: cross-entropy on the answer, no verdict, no margin term):

* ``--answers computed``: each question answered with its computed truth, the check's own sentence
  ("79 is larger than 7.", "14 - 6 = 8."): teaches the skill the judge must apply (the "skill rows").
* ``--answers own --model MODEL``: the model's own greedy answers, kept where the faithfulness reader finds
  the truth in them (the "closed-book replay": rehearse what the base model already knows).

Only training-split questions are drawn (the built-in families own disjoint keys per split, so no
validation or test question appears); instruction-following questions (a constraint, not a value to
recall) and items without a computed truth are skipped and counted. A question wording repeated by the
generator is written once; one fact of a table (a capital, a plural) can recur under other wordings, so
the rows hold fewer distinct facts than rows (the script prints both). A computed answer the faithfulness
reader would not accept as stating the truth is left out and counted (``reader_rejects``).

    python experiments/knowledge/closed_book_rows.py skill.jsonl --answers computed --n 6000 \\
        --cap compare=300 small_arithmetic=300 reading=0
    python -m cj2.train +experiment=quickstart 'data.train_files=[skill.jsonl]' trainer.max_steps=240
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cj2.data.tasks import split_families
from cj2.data.tasks.generate import generate_items
from cj2.evaluation.closed_book import _split, closed_book_prompt, closed_book_rows
from cj2.evaluation.faithfulness import check_truth, reference_of


def computed_answer(item: Any) -> str:
    """The sentence of the item's sound check that states its truth, as a sentence."""
    text = str(item.meta["check"]["work"][-1]).strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def unique_questions(items: Sequence[Any], caps: dict[str, int]) -> tuple[list[Any], Counter]:
    """Items with a computed value to state (the closed-book probe's own filter), one per question, at most
    ``caps[family]`` per family; the counts of what was left out (``n_no_truth``, ``n_not_a_value``,
    ``repeated``, ``over_cap``)."""
    probeable, skipped = _split(items)
    kept, seen, per_family = [], set(), Counter()
    for item, ref in probeable:
        key = (ref.family, item.question)
        if key in seen:
            skipped["repeated"] += 1
            continue
        seen.add(key)
        if per_family[ref.family] >= caps.get(ref.family, 1 << 30):
            skipped["over_cap"] += 1
            continue
        per_family[ref.family] += 1
        kept.append(item)
    return kept, skipped


def _row(item: Any, messages: list[dict[str, str]], response: str, source: str) -> dict[str, Any]:
    return {
        "id": f"{source}/{item.id}",
        "messages": messages,
        "response": response,
        "verdict": None,
        "format": "none",
        "source": source,
        "meta": {"family": item.meta["family"]},
    }


def computed_rows(items: Sequence[Any]) -> tuple[list[dict[str, Any]], Counter]:
    """One row per item: the question alone, answered with its computed truth; an answer the faithfulness
    reader does not accept (it would score the judge wrong for stating it) is counted, not written."""
    rows, skipped = [], Counter()
    for it in items:
        answer = computed_answer(it)
        if check_truth(answer, reference_of(it))[0] is not True:
            skipped["reader_rejects"] += 1
            continue
        rows.append(_row(it, closed_book_prompt(it, ""), answer, "closed_book_skill"))
    return rows, skipped


def own_rows(sampler, items: Sequence[Any], suffix: str) -> tuple[list[dict[str, Any]], Counter]:
    """One row per item the sampler answers right alone (greedy), with its own answer; counts of the rest."""
    rows, skipped = closed_book_rows(sampler, items, suffix=suffix)
    by_id = {str(it.id): it for it in items}
    out, counts = [], Counter(skipped)
    for r in rows:
        if r.ok:
            it = by_id[r.id]
            out.append(_row(it, closed_book_prompt(it, suffix), r.answer.strip(), "closed_book_replay"))
        else:
            counts["wrong" if r.ok is False else "unread"] += 1
    return out, counts


def _caps(values: Sequence[str], families: Sequence[str]) -> dict[str, int]:
    caps = {}
    for v in values:
        family, sep, n = v.partition("=")
        if not sep or not n.isdigit():
            raise SystemExit(f"--cap {v!r}: expected FAMILY=N")
        if family not in families:
            raise SystemExit(f"--cap {v!r}: no training family {family!r} (families: {', '.join(families)})")
        caps[family] = int(n)
    return caps


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="the JSONL file to write (data.train_files)")
    p.add_argument("--answers", choices=["computed", "own"], default="computed")
    p.add_argument(
        "--model", default=None, help="--answers own: the answering model (folder or 'smollm2_135m')"
    )
    p.add_argument("--n", type=int, default=6000, help="training-split items drawn before de-duplication")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--tiers", nargs="+", default=["easy"])
    p.add_argument("--cap", nargs="*", default=[], metavar="FAMILY=N", help="at most N questions of FAMILY")
    p.add_argument("--suffix", default="\nAnswer briefly.", help="--answers own: appended to each question")
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args(argv)

    caps = _caps(args.cap, split_families("train", args.tiers))
    items, skipped = unique_questions(
        generate_items(args.n, split="train", seed=args.seed, tiers=args.tiers), caps
    )
    if args.answers == "computed":
        rows, rejected = computed_rows(items)
        skipped.update(rejected)
    else:
        if not args.model:
            raise SystemExit("--answers own needs --model")
        from cj2.judge import Judge

        answerer = Judge.from_pretrained(args.model, batch_size=args.batch_size, verdict_probs=False)
        rows, counts = own_rows(answerer.sampler, items, args.suffix)
        skipped.update(counts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    per_family = Counter(r["meta"]["family"] for r in rows)
    families = dict(sorted(per_family.items()))
    facts = len({(r["meta"]["family"], r["response"]) for r in rows})
    print(f"{len(rows)} rows ({facts} distinct answers) -> {args.out}; per family {families}")
    print(f"left out: {dict(skipped)}")


if __name__ == "__main__":
    main()
