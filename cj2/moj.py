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
``tie_policy=drop``) and ``<out>.agreement.json`` (counts and kappas). An ``out`` that holds another ground
truth is not replaced: refused, or with ``overwrite=true`` moved aside (``<out>.replaced-<time>``, its
agreement file with it); a re-run that gives the same ground truth just writes it again. An ``out`` that is a
folder, lies under a file or is one of the judge files is refused by name before anything is read.

Like every cj2 entry it runs under :func:`cj2.runtime.hydra_entry`: secrets are kept off the screen, and the
config is checked (:func:`cj2.confcheck.check_config`: ``+key``/``++key`` typos, numbers out of range)
before anything is written.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cj2.data.io import DataError, atomic_write_json, read_rows, write_jsonl
from cj2.data.schema import PAIRWISE_LABELS
from cj2.evaluation.agreement import agreement_report, majority_vote
from cj2.evaluation.placement import to_original
from cj2.runtime import hydra_entry, json_safe, reraise_scrubbed, to_plain
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


def _agreement_path(out: Path) -> Path:
    return out.with_name(out.name + ".agreement.json")


def check_out(out: Path, judges: Sequence[str]) -> None:
    """Refuse an ``out`` that cannot be the ground-truth file, before any judge file is read: a folder, a
    path under a file, or one of the judge files itself (with ``overwrite=true`` that input would be moved
    aside). Each error names the key and what to give instead."""
    if out.is_dir():
        raise ValueError(
            f"out={out} is a folder; out names the ground-truth JSONL file to write "
            f"(e.g. out={out / 'gt.jsonl'})"
        )
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"out={out}: {parent} is a file, not a folder; give a path in a folder")
            break
    for i, judge in enumerate(judges):
        same = out.exists() and Path(judge).exists() and os.path.samefile(out, judge)
        if same or out.resolve() == Path(judge).resolve():
            raise ValueError(
                f"out={out} is also judges[{i}] ({judge}): the ground truth would replace a judge's "
                "verdicts; choose another out=..."
            )


def claim_output(out: Path, rows: list[dict[str, Any]], *, overwrite: bool) -> Path | None:
    """Make way for the ground truth ``rows`` at ``out``: nothing to do when ``out`` is new or already holds
    exactly these rows; another ground truth there is refused, or with ``overwrite`` moved aside with its
    agreement file (``<name>.replaced-<time>``, nothing deleted). Returns where it went (or None)."""
    if not out.exists():
        return None
    try:
        old = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines() if x.strip()]
    except (UnicodeDecodeError, ValueError):
        old = None
    if old == rows:
        return None
    if not overwrite:
        raise FileExistsError(
            f"out={out} holds another ground truth; choose another out=..., or overwrite=true to move the "
            f"old one aside (to {out.name}.replaced-<time>, nothing deleted)"
        )
    stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    aside, n = out.with_name(f"{out.name}.replaced-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = out.with_name(f"{out.name}.replaced-{stamp}-{n}")
    os.replace(out, aside)
    if _agreement_path(out).exists():
        os.replace(_agreement_path(out), _agreement_path(aside))
    log.warning("moved the earlier ground truth %s aside to %s", out, aside)
    return aside


def moj(cfg: DictConfig | dict) -> dict[str, Any]:
    from cj2.confcheck import check_config

    try:
        check_config(cfg, "moj")
    except Exception as err:  # keep secrets out of the tracebacks Hydra prints
        reraise_scrubbed(err)
        raise
    cfg = to_plain(cfg)
    paths = [str(p) for p in cfg.get("judges") or []]
    if len(paths) < 2:
        raise ValueError(f"judges=[...] needs at least two judge files, got {paths}")
    if not cfg.get("out"):
        raise ValueError("out=<path> is required (the ground-truth JSONL to write)")
    check_out(Path(cfg["out"]), paths)
    names = _names(paths, cfg.get("names"))
    judge_votes = {name: read_votes(p, format=cfg.get("format")) for name, p in zip(names, paths)}
    rows, summary = mix_of_judgers(
        judge_votes, tie_policy=cfg.get("tie_policy") or "drop", min_votes=cfg.get("min_votes")
    )
    out = Path(cfg["out"])
    claim_output(out, rows, overwrite=bool(cfg.get("overwrite")))
    write_jsonl(out, rows)
    summary["files"] = dict(zip(names, paths))
    atomic_write_json(_agreement_path(out), json_safe(summary))
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


@hydra_entry("moj")
def main(cfg: DictConfig) -> None:
    moj(cfg)


if __name__ == "__main__":
    main()
