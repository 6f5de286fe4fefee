"""``python -m cj2.moj judges=[a.jsonl,b.jsonl,c.jsonl] out=gt.jsonl``: a Mix-of-Judgers ground truth.

JudgerBenchV2 labels each pair with the majority verdict of three strong judges (arXiv 2507.09104,
Sec. 4.2). This entry reads one file of verdicts per judge, takes the majority per item under a
configurable tie policy (:func:`cj2.evaluation.agreement.majority_vote`), reports pairwise Cohen's kappa
and Fleiss' kappa, and writes the ground truth that ``benchmark.gt_path`` reads.

A judge file is JSONL with one row per item: ``{"id", "verdict"}`` (``A``/``B``/``tie`` in the frame of
the item as the benchmark file has it; ``null`` abstains), or ``{"id", "output"[, "order"]}`` parsed with
``format=`` (an output given in order ``BA`` is mapped back). cj2's own ``judgments.jsonl`` /
``verdict_logits.jsonl`` qualify: only their ``headline`` rows are read.

Outputs: ``out`` (JSONL ``{"id", "label", "votes", "n_votes"}``, items without a majority left out under
``tie_policy=drop``) and ``<out>.agreement.json`` (counts and kappas).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

from cj2.data.io import DataError, atomic_write_json, read_rows, write_jsonl
from cj2.data.schema import PAIRWISE_LABELS
from cj2.evaluation.agreement import agreement_report, majority_vote
from cj2.evaluation.placement import to_original
from cj2.runtime import CONF_MODULE, json_safe, to_plain
from cj2.verdict import parse_verdict

log = logging.getLogger("cj2.moj")


def read_votes(path: str | os.PathLike, *, format: str | None = None) -> dict[str, str | None]:
    """``item id -> verdict`` of one judge file (module docstring); DataError naming file:line on bad rows."""
    votes: dict[str, str | None] = {}
    for line, row in read_rows(path):
        if row.get("pass") not in (None, "headline"):
            continue  # the swapped or style passes of an evaluate run
        if row.get("id") is None:
            raise DataError("missing required field", path=path, line=line, field="id")
        if "verdict" in row:
            verdict = row["verdict"]
        elif "output" in row:
            if format is None:
                raise DataError(
                    "the row has an output but no verdict; pass format=<verdict format> to parse it",
                    path=path,
                    line=line,
                    field="output",
                )
            if not isinstance(row["output"], str):
                raise DataError("expected a string", path=path, line=line, field="output")
            order = row.get("order", "AB")
            if order not in ("AB", "BA"):
                raise DataError(f"order {order!r} is not AB or BA", path=path, line=line, field="order")
            verdict = to_original(parse_verdict(row["output"], format), order == "BA")
        else:
            raise DataError("a row needs a 'verdict' or an 'output'", path=path, line=line, field="verdict")
        if verdict is not None and verdict not in PAIRWISE_LABELS:
            raise DataError(
                f"verdict {verdict!r} is not one of {PAIRWISE_LABELS} (or null)",
                path=path,
                line=line,
                field="verdict",
            )
        key = str(row["id"])
        if key in votes:
            raise DataError(f"item {key!r} appears twice", path=path, line=line, field="id")
        votes[key] = verdict
    return votes


def mix_of_judgers(
    judge_votes: dict[str, dict[str, str | None]], *, tie_policy: str = "drop", min_votes: int | None = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Ground-truth rows and an agreement summary from ``judge name -> (item id -> verdict)``.

    Items are those any judge voted on, in order of first appearance; a judge that lacks an item abstains.
    """
    names = list(judge_votes)
    ids: dict[str, None] = {}
    for votes in judge_votes.values():
        ids.update(dict.fromkeys(votes))
    table = {name: [judge_votes[name].get(i) for i in ids] for name in names}
    rows, no_majority = [], 0
    for k, item_id in enumerate(ids):
        votes = [table[name][k] for name in names]
        label = majority_vote(votes, tie_policy=tie_policy, min_votes=min_votes)
        if label is None:
            no_majority += 1
            continue
        rows.append(
            {
                "id": item_id,
                "label": label,
                "votes": dict(zip(names, votes)),
                "n_votes": sum(v is not None for v in votes),
            }
        )
    summary = {
        "judges": names,
        "n_items": len(ids),
        "n_labelled": len(rows),
        "n_no_majority": no_majority,
        "tie_policy": tie_policy,
        "labels": {lab: sum(r["label"] == lab for r in rows) for lab in PAIRWISE_LABELS},
        "agreement": agreement_report(table),
    }
    return rows, summary


def _names(paths: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names:
        if len(names) != len(paths):
            raise ValueError(f"names has {len(names)} entries for {len(paths)} judge files")
        return [str(n) for n in names]
    stems = [Path(p).stem for p in paths]
    return stems if len(set(stems)) == len(stems) else [f"{i}:{s}" for i, s in enumerate(stems)]


def moj(cfg: DictConfig | dict) -> dict[str, Any]:
    cfg = to_plain(cfg)
    paths = [str(p) for p in cfg.get("judges") or []]
    if len(paths) < 2:
        raise ValueError(f"judges=[...] needs at least two judge files, got {paths}")
    if not cfg.get("out"):
        raise ValueError("out=<path> is required (the ground-truth JSONL to write)")
    names = _names(paths, cfg.get("names"))
    judge_votes = {name: read_votes(p, format=cfg.get("format")) for name, p in zip(names, paths)}
    rows, summary = mix_of_judgers(
        judge_votes, tie_policy=cfg.get("tie_policy") or "drop", min_votes=cfg.get("min_votes")
    )
    out = Path(cfg["out"])
    write_jsonl(out, rows)
    summary["files"] = dict(zip(names, paths))
    atomic_write_json(out.with_name(out.name + ".agreement.json"), json_safe(summary))
    log.info(
        "ground truth: %s (%d of %d items labelled, %d without a majority)",
        out,
        summary["n_labelled"],
        summary["n_items"],
        summary["n_no_majority"],
    )
    lines = [
        f"Mix-of-Judgers: {summary['n_labelled']} of {summary['n_items']} items labelled -> {out}",
        f"  without a majority ({summary['tie_policy']}): {summary['n_no_majority']}",
    ]
    lines += [f"  {k}: {v:.3f}" for k, v in summary["agreement"].items() if not k.endswith("_n")]
    print("\n".join(lines))
    return summary


@hydra.main(version_base="1.3", config_path=CONF_MODULE, config_name="moj")
def main(cfg: DictConfig) -> None:
    moj(cfg)


if __name__ == "__main__":
    main()
