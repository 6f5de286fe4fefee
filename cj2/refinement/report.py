"""Scoring the critique -> revision rows and writing ``report.md``.

Verifiable scoring (per arm, over the items every arm finished): accuracy of the first answers (*before*)
and of the final revisions (*after*), the paired difference, the share of right answers turned wrong and of
wrong answers turned right, the revisions' parse rate, and how often the critic's yes/no verdict on the
first answer matched its correctness. Intervals are 95 % percentile bootstraps over items (paired for
the difference; within the right or wrong first answers for the transition shares).

Open-ended scoring (per arm): the revision's win rate against the first answer (each order's judgment
scores 1 for the revision, 0 for the first answer, 0.5 for a tie; an unparsed judgment is left out; an
item's score is the mean of its orders), its bootstrap interval, wins / ties / losses by item score, the
swap consistency (items whose two orders pick the same winner, among those with both parsed) and the share
of revisions identical to the first answer (ties, not judged).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

ARM_TITLES = {
    "critic": "critique by the judge",
    "self_refine": "self-refine (no critique)",
    "second_critic": "critique by the second critic",
}


def _ci(values: Sequence[float], bootstrap: int, seed: int) -> list[float] | None:
    if not values or bootstrap < 1:
        return None
    from cj2.metrics.bootstrap import bootstrap_ci

    low, high = bootstrap_ci([float(v) for v in values], n_resamples=bootstrap, seed=seed)
    return [low, high]


def _share(values: Sequence[float], bootstrap: int, seed: int) -> dict[str, Any]:
    n = len(values)
    return {"mean": sum(values) / n if n else None, "ci": _ci(values, bootstrap, seed), "n": n}


def _final(arm_row: Mapping[str, Any]) -> Mapping[str, Any]:
    return arm_row["rounds"][-1]["revision"]


def score(rows: Sequence[Mapping[str, Any]], plan: Any) -> dict[str, Any]:
    """The metrics of finished rows under ``plan`` (:class:`cj2.refinement.runner.Plan`)."""
    if plan.verifiable:
        return score_verifiable(rows, plan.arms, bootstrap=plan.bootstrap, seed=plan.seed)
    return score_pairwise(rows, plan.arms, bootstrap=plan.bootstrap, seed=plan.seed)


def score_verifiable(
    rows: Sequence[Mapping[str, Any]], arms: Sequence[str], *, bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    before = [float(r["answer"]["correct"]) for r in rows]
    out: dict[str, Any] = {
        "n": len(rows),
        "before": _share(before, bootstrap, seed),
        "answer_parse_rate": _mean([r["answer"]["value"] is not None for r in rows]),
        "arms": {},
        "families": {},
    }
    right = [i for i, b in enumerate(before) if b]
    wrong = [i for i, b in enumerate(before) if not b]
    for arm in arms:
        after = [float(_final(r["arms"][arm])["correct"]) for r in rows]
        m: dict[str, Any] = {"after": _share(after, bootstrap, seed)}
        deltas = [a - b for a, b in zip(after, before)]
        m["delta"] = {"mean": _mean(deltas), "ci": _ci(deltas, bootstrap, seed)}
        r2w = [1.0 - after[i] for i in right]
        w2r = [after[i] for i in wrong]
        m["right_to_wrong"] = {**_share(r2w, bootstrap, seed), "k": int(sum(r2w))}
        m["wrong_to_right"] = {**_share(w2r, bootstrap, seed), "k": int(sum(w2r))}
        m["revision_parse_rate"] = _mean([_final(r["arms"][arm])["value"] is not None for r in rows])
        m["changed_rate"] = _mean(
            [_final(r["arms"][arm])["value"] != r["answer"]["value"] for r in rows]
        )  # the checked value, not the wording
        n_rounds = len(rows[0]["arms"][arm]["rounds"]) if rows else 0
        m["rounds"] = [
            _mean([float(r["arms"][arm]["rounds"][k]["revision"]["correct"]) for r in rows])
            for k in range(n_rounds)
        ]
        if arm != "self_refine":
            verdicts = [r["arms"][arm]["rounds"][0]["critique"]["verdict"] for r in rows]
            parsed = [(v, r["answer"]["correct"]) for v, r in zip(verdicts, rows) if v is not None]
            m["critique_parse_rate"] = _mean([v is not None for v in verdicts])
            m["critique_agreement"] = _mean([(v == "yes") == bool(c) for v, c in parsed])
            m["critique_says_wrong_rate"] = _mean([v == "no" for v, _ in parsed])
        out["arms"][arm] = m
    for fam in sorted({r["family"] for r in rows}):
        sub = [r for r in rows if r["family"] == fam]
        out["families"][fam] = {
            "n": len(sub),
            "before": _mean([float(r["answer"]["correct"]) for r in sub]),
            **{arm: _mean([float(_final(r["arms"][arm])["correct"]) for r in sub]) for arm in arms},
        }
    return out


def score_pairwise(
    rows: Sequence[Mapping[str, Any]], arms: Sequence[str], *, bootstrap: int = 1000, seed: int = 0
) -> dict[str, Any]:
    out: dict[str, Any] = {"n": len(rows), "arms": {}}
    for arm in arms:
        comps = [r["arms"][arm]["compare"] for r in rows]
        scores = [c["score"] for c in comps if c.get("score") is not None]
        judged = [c for c in comps if not c.get("identical")]
        orders = [c[o] for c in judged for o in ("AB", "BA")]
        both = [c["consistent"] for c in judged if c.get("consistent") is not None]
        out["arms"][arm] = {
            "win_rate": _share(scores, bootstrap, seed),
            "wins": sum(s > 0.5 for s in scores),
            "ties": sum(s == 0.5 for s in scores),
            "losses": sum(s < 0.5 for s in scores),
            "unscored": len(comps) - len(scores),
            "swap_consistency": _mean([float(x) for x in both]),
            "n_both_parsed": len(both),
            "identical_rate": _mean([bool(c.get("identical")) for c in comps]),
            "compare_parse_rate": _mean([o["verdict"] is not None for o in orders]),
        }
    return out


def _mean(values: Sequence[Any]) -> float | None:
    values = list(values)
    return sum(float(v) for v in values) / len(values) if values else None


# --------------------------------------------------------------------------------------------- report
def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):.1f}"


def _with_ci(m: Mapping[str, Any], key: str = "mean") -> str:
    text = _pct(m.get(key))
    ci = m.get("ci")
    return text + (f" [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else "")


def _pp(m: Mapping[str, Any]) -> str:
    if m.get("mean") is None:
        return "–"
    ci = m.get("ci")
    text = f"{100 * m['mean']:+.1f}"
    return text + (f" [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci else "")


def _transition(m: Mapping[str, Any]) -> str:
    if not m.get("n"):
        return "0/0"
    return f"{m['k']}/{m['n']} = {_with_ci(m)}"


def arm_title(metrics: Mapping[str, Any], arm: str) -> str:
    who = metrics.get("critics", {}).get(arm)
    return ARM_TITLES[arm] + (f" `{who}`" if who else "")


def verifiable_table(metrics: Mapping[str, Any]) -> str:
    res = metrics["results"]
    header = [
        "answers",
        "n",
        "accuracy % [95% CI]",
        "Δ vs before, pp [95% CI]",
        "right → wrong",
        "wrong → right",
        "parsed %",
        "critic verdict parsed % / agrees %",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append(
        f"| before: the policy's first answer | {res['n']} | {_with_ci(res['before'])} | – | – | – | "
        f"{_pct(res['answer_parse_rate'])} | – |"
    )
    for arm, m in res["arms"].items():
        row = [
            f"after: {arm_title(metrics, arm)}",
            str(res["n"]),
            _with_ci(m["after"]),
            _pp(m["delta"]),
            _transition(m["right_to_wrong"]),
            _transition(m["wrong_to_right"]),
            _pct(m["revision_parse_rate"]),
            f"{_pct(m.get('critique_parse_rate'))} / {_pct(m.get('critique_agreement'))}"
            if arm != "self_refine"
            else "–",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def family_table(metrics: Mapping[str, Any]) -> str:
    res = metrics["results"]
    arms = list(res["arms"])
    lines = [
        "| family | n | before % | " + " | ".join(f"{a} %" for a in arms) + " |",
        "|" + "---|" * (len(arms) + 3),
    ]
    for fam, m in res["families"].items():
        lines.append(
            f"| {fam} | {m['n']} | {_pct(m['before'])} | " + " | ".join(_pct(m[a]) for a in arms) + " |"
        )
    return "\n".join(lines) + "\n"


def pairwise_table(metrics: Mapping[str, Any]) -> str:
    res = metrics["results"]
    header = [
        "revision by",
        "n",
        "win rate vs first answer % [95% CI]",
        "wins / ties / losses",
        "swap consistency %",
        "identical %",
        "judgments parsed %",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for arm, m in res["arms"].items():
        row = [
            arm_title(metrics, arm),
            str(m["win_rate"]["n"]),
            _with_ci(m["win_rate"]),
            f"{m['wins']} / {m['ties']} / {m['losses']}",
            _pct(m["swap_consistency"]),
            _pct(m["identical_rate"]),
            _pct(m["compare_parse_rate"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def render_report(metrics: Mapping[str, Any]) -> str:
    """``report.md``: the headline table, then per-family accuracy (verifiable) and the notes."""
    title = (
        f"# Critique → revision: policy `{metrics['policy']}`, {metrics['rounds']} round(s), "
        f"seed {metrics['seed']}\n"
    )
    parts = [title]
    if metrics["scoring"] == "verifiable":
        parts.append(verifiable_table(metrics))
        if metrics["results"]["families"]:
            parts.append("\n**Accuracy per task family** (final revisions)\n\n" + family_table(metrics))
    else:
        parts.append(f"Revisions compared with the first answer by `{metrics['scorer']}`, both orders.\n\n")
        parts.append(pairwise_table(metrics))
    notes = list(metrics.get("notes", []))
    run = metrics.get("run", {})
    notes.append(
        f"{run.get('done_items', 0)} items done ({run.get('reused_items', 0)} reused from an earlier run); "
        f"total wall time {metrics['wall_time_s']} s"
    )
    parts.append("\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    return "\n".join(parts)
