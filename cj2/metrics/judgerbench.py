"""JudgerBenchV2: sample accuracy plus rank and score fidelity of per-model win counts (arXiv 2507.09104,
Sec. 4, Eq. 5, Table 6)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, check_lengths, string_id
from cj2.metrics.bootstrap import bootstrap_ci_fn
from cj2.metrics.rank import kendall_tau_b, nanmean, spearman_rho

COMPAT_MODES = ("opencompass",)

# verdict codes in the per-item states
_UNPARSED, _A, _B, _OTHER = 0, 1, 2, 3

_Num = TypeVar("_Num", float, Tensor)


def final_score(accuracy: _Num, normalized_diff: _Num) -> _Num:
    """JudgerBenchV2 final score ``(accuracy - normalized_diff + 100) / 2`` (both on a 0-100 scale).

    This is ``(P + 100) / 2`` with ``P`` of Eq. 5 (arXiv 2507.09104), the form OpenCompass reports and the
    paper's Table 6 uses, e.g. CompassJudger-2-7B: (78.04 - 57.00 + 100) / 2 = 60.52.
    """
    return (accuracy - normalized_diff + 100) / 2


def rank_models(scores: Mapping[str, float]) -> dict[str, int]:
    """Ranks 1..M by score descending, ties broken by model name ascending (code-point order)."""
    order = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return {model: rank for rank, (model, _) in enumerate(order, start=1)}


@dataclass
class ScenarioCounts:
    """What one scenario's score is computed from."""

    n: int  # judged items
    n_parsed: int  # items whose judge verdict was parsed
    n_correct: int  # parsed items whose verdict equals the ground truth
    judge_wins: dict[str, int]  # candidate model -> wins given by the judge (every candidate, zeros included)
    gt_wins: dict[str, int]  # candidate model -> ground-truth wins (every candidate, zeros included)


def score_strict(c: ScenarioCounts) -> dict[str, float]:
    """One scenario under the paper's definition (Eq. 5) made total: see :class:`JudgerBenchV2Score`."""
    models = sorted(c.gt_wins)
    rank_gt = rank_models(c.gt_wins)
    rank_judge = rank_models(c.judge_wins)
    rank_d = [abs(rank_gt[m] - rank_judge[m]) for m in models]
    score_d = [abs(c.gt_wins[m] - c.judge_wins[m]) for m in models]
    m_count = len(models)
    max_score_d = max(score_d, default=0)
    # 0/0 terms are 0: one model has no rank to get wrong; all-equal wins have no score to get wrong
    terms = [
        (r / (m_count - 1) if m_count > 1 else 0.0) + (s / max_score_d if max_score_d else 0.0)
        for r, s in zip(rank_d, score_d)
    ]
    normalized = 100 * sum(terms) / m_count if m_count else 0.0
    accuracy = 100 * c.n_correct / c.n if c.n else math.nan
    return {
        "accuracy": accuracy,
        "rank_diff": float(sum(rank_d)),
        "score_diff": float(sum(score_d)),
        "normalized_diff": normalized,
        "final": final_score(accuracy, normalized),
    }


def score_opencompass(c: ScenarioCounts) -> dict[str, float]:
    """One scenario exactly as OpenCompass's ``Judgerbenchv2Evaluator.score`` computes it, quirks included.

    ``dict1`` holds only models the judge picked at least once, ``dict2`` the full ground-truth table; both
    sorted by name. Ranks are over each dict's own models; the sums run over ``dict1``; the maximum score
    difference zips the two dicts' values by position (misaligned when ``dict1`` lacks a model). Where
    OpenCompass would raise (no parsed item, an empty ``dict1``, one model in ``dict1``, or a zero maximum
    score difference) the affected values are NaN.
    """
    dict1 = {m: w for m, w in sorted(c.judge_wins.items()) if w > 0}
    dict2 = dict(sorted(c.gt_wins.items()))
    accuracy = 100 * c.n_correct / c.n_parsed if c.n_parsed else math.nan
    rank1, rank2 = rank_models(dict1), rank_models(dict2)
    rank_diff = sum(abs(rank1[m] - rank2[m]) for m in dict1)
    score_diff = sum(abs(dict1[m] - dict2[m]) for m in dict1)
    max_rank_d = len(dict1) - 1
    zipped = [abs(a - b) for a, b in zip(dict1.values(), dict2.values())]
    max_score_d = max(zipped) if zipped else 0
    if not dict1 or max_rank_d == 0 or max_score_d == 0:
        normalized = math.nan  # OpenCompass: ValueError (max of nothing) or ZeroDivisionError
    else:
        terms = [
            abs(rank1[m] - rank2[m]) / max_rank_d + abs(dict1[m] - dict2[m]) / max_score_d for m in dict1
        ]
        normalized = 100 * sum(terms) / len(terms)
    return {
        "accuracy": accuracy,
        "rank_diff": float(rank_diff),
        "score_diff": float(score_diff),
        "normalized_diff": normalized,
        "final": final_score(accuracy, normalized),
    }


_MEAN_KEYS = ("accuracy", "rank_diff", "score_diff", "normalized_diff", "final")


def _code(verdict: str | None) -> int:
    return _UNPARSED if verdict is None else _A if verdict == "A" else _B if verdict == "B" else _OTHER


class JudgerBenchV2Score(JudgeMetric):
    """JudgerBenchV2 score (arXiv 2507.09104, Sec. 4, Eq. 5; OpenCompass ``Judgerbenchv2Evaluator``).

    Each item pits a candidate model against ``reference_model`` (GPT-4o-mini in the paper) on one query of
    one scenario. ``update(scenario, model_a, model_b, judge_verdict, gt_verdict)``: the models in
    positions A and B, the judge's parsed verdict (``"A"``, ``"B"``, ``None`` when unparsed; any other label
    is a parsed verdict that picks no side) and the ground truth (``"A"``/``"B"``, the Mix-of-Judgers
    majority, Sec. 4). Whichever side wins, its model gets a win unless it is the reference model; this
    gives per scenario the judge's win counts ``s2`` and, from ``gt_verdict``, the ground-truth counts ``s1``
    (or ``gt_win_counts[scenario][model]``, a published table such as OpenCompass's, when given).

    Per scenario: ``accuracy = 100 C/N``; ranks by wins descending, ties by model name ascending, ranks
    1..M; ``rank_diff = sum_m |r1 - r2|``; ``score_diff = sum_m |s1 - s2|``;
    ``normalized_diff = 100 mean_m(|r1 - r2| / (M - 1) + |s1 - s2| / max_m' |s1 - s2|)``;
    ``final = (accuracy - normalized_diff + 100) / 2`` (:func:`final_score`). The unsuffixed keys are the
    plain means over scenarios (what the paper's Table 6 reports); ``<key>/<scenario>`` per scenario.

    Two modes:

    * ``compat=None`` (default, strict): every candidate model is in both tables with zero wins counted;
      ``N`` counts every item, so an unparsed verdict is wrong; a 0/0 normalisation term is 0 (a single
      model, or judge and ground truth agreeing on every count). Always finite.
    * ``compat="opencompass"``: the numbers of OpenCompass's released evaluator, quirks included:
      unparsed items are dropped from ``N`` and from the wins; a model the judge never picks is missing
      from the judge's table, so its ranks are over fewer models, ``M - 1`` becomes ``len(dict1) - 1`` and
      the maximum score difference zips the two name-sorted tables by position; see
      :func:`score_opencompass`. Where OpenCompass would crash (it divides by zero when no item parsed, when
      the judge's table holds fewer than two models or the maximum score difference is 0, and takes the max
      of nothing when the table is empty) this metric returns NaN for the values affected (``accuracy``,
      ``normalized_diff``, ``final``) in that scenario, and so for their means, instead of raising.
      :meth:`update_from_outputs` parses raw outputs with OpenCompass's rule in this mode.

    In both modes a model in the items that the given ``gt_win_counts`` does not list is an error, as is a
    scenario it lacks. The scores also carry ``parse_rate`` and rank agreement between the full tables
    (``kendall_tau``, ``spearman_rho``; their means skip scenarios where they are undefined).

    DDP: items are ``cat`` states of name ids and verdict codes (see :mod:`cj2.metrics._base`), so the win
    tables are built from every rank's items; the candidate model and scenario lists need not be known in
    advance.
    """

    higher_is_better = True

    def __init__(
        self,
        reference_model: str,
        compat: str | None = None,
        gt_win_counts: Mapping[str, Mapping[str, int]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if compat is not None and compat not in COMPAT_MODES:
            raise ValueError(f"compat must be None or one of {COMPAT_MODES}, got {compat!r}")
        self.reference_model = reference_model
        self.compat = compat
        self.gt_win_counts = (
            {s: {m: int(w) for m, w in t.items()} for s, t in gt_win_counts.items()}
            if gt_win_counts
            else None
        )
        for name in ("scenario_id", "model_a_id", "model_b_id", "judge_code", "gt_code"):
            self._add_cat_state(name, torch.int64)
        self._add_name_state()

    def update(
        self,
        scenario: Sequence[str],
        model_a: Sequence[str],
        model_b: Sequence[str],
        judge_verdict: Sequence[str | None],
        gt_verdict: Sequence[str],
    ) -> None:
        check_lengths(
            scenario=scenario,
            model_a=model_a,
            model_b=model_b,
            judge_verdict=judge_verdict,
            gt_verdict=gt_verdict,
        )
        for i, g in enumerate(gt_verdict):
            if g not in ("A", "B"):
                raise ValueError(f"gt_verdict[{i}] must be 'A' or 'B', got {g!r}")
        self._append("scenario_id", self._ids(scenario, "scenario"))
        self._append("model_a_id", self._ids(model_a, "model_a"))
        self._append("model_b_id", self._ids(model_b, "model_b"))
        self._append("judge_code", torch.tensor([_code(v) for v in judge_verdict], dtype=torch.int64))
        self._append("gt_code", torch.tensor([_code(v) for v in gt_verdict], dtype=torch.int64))

    def default_parser(self) -> Callable[[str], str | None]:
        """The parser :meth:`update_from_outputs` uses: in compat mode OpenCompass's rule (the last
        ``"winner"``/``"胜者"`` match), else cj2's own ``winner_json`` format."""
        from cj2 import verdict  # lazy: the metrics stay importable on their own

        if self.compat == "opencompass":
            return lambda text: verdict.parse_opencompass(text, "winner")
        return lambda text: verdict.parse_verdict(text, "winner_json")

    def update_from_outputs(
        self,
        scenario: Sequence[str],
        model_a: Sequence[str],
        model_b: Sequence[str],
        outputs: Sequence[str],
        gt_verdict: Sequence[str],
        parser: Callable[[str], str | None] | None = None,
    ) -> None:
        """:meth:`update` from the judge's raw outputs, parsed by ``parser`` or :meth:`default_parser`."""
        parse = parser or self.default_parser()
        self.update(scenario, model_a, model_b, [parse(text) for text in outputs], gt_verdict)

    # -- computing ----------------------------------------------------------------------------------------
    def _items(self) -> Tensor:
        """All items as rows [scenario, model_a, model_b, judge_code, gt_code] (int64)."""
        cols = ("scenario_id", "model_a_id", "model_b_id", "judge_code", "gt_code")
        return torch.stack([self._cat(c).cpu() for c in cols], dim=1)

    def _counts(self, items: Tensor, names: Mapping[int, str]) -> dict[str, ScenarioCounts]:
        ref = string_id(self.reference_model)
        out: dict[str, ScenarioCounts] = {}
        for s_id in torch.unique(items[:, 0]).tolist():
            rows = items[items[:, 0] == s_id]
            a, b, judge, gt = rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 4]
            scenario = names[s_id]
            candidates = {names[m] for m in torch.unique(torch.cat([a, b])).tolist() if m != ref}
            judge_winner = torch.where(judge == _A, a, torch.where(judge == _B, b, -1))
            gt_winner = torch.where(gt == _A, a, b)
            judge_wins = _win_counts(judge_winner, ref, names, candidates)
            if self.gt_win_counts is None:
                gt_wins = _win_counts(gt_winner, ref, names, candidates)
            else:
                if scenario not in self.gt_win_counts:
                    raise ValueError(
                        f"gt_win_counts has no scenario {scenario!r} (it has {sorted(self.gt_win_counts)})"
                    )
                gt_wins = dict(self.gt_win_counts[scenario])
                unknown = sorted(candidates - set(gt_wins))
                if unknown:
                    raise ValueError(f"gt_win_counts[{scenario!r}] lists no wins for model(s) {unknown}")
                judge_wins = {m: judge_wins.get(m, 0) for m in gt_wins}
            out[scenario] = ScenarioCounts(
                n=len(rows),
                n_parsed=int((judge != _UNPARSED).sum()),
                n_correct=int((judge == gt).sum()),
                judge_wins=judge_wins,
                gt_wins=gt_wins,
            )
        return out

    def _scores(
        self, items: Tensor, names: Mapping[int, str], rank_agreement: bool = True
    ) -> dict[str, float]:
        score_fn = score_opencompass if self.compat == "opencompass" else score_strict
        out: dict[str, float] = {}
        per_key: dict[str, list[float]] = {}
        for scenario, c in sorted(self._counts(items, names).items()):
            row = {**score_fn(c), "parse_rate": c.n_parsed / c.n}
            if rank_agreement:
                models = sorted(c.gt_wins)
                gt, judge = [c.gt_wins[m] for m in models], [c.judge_wins[m] for m in models]
                row.update(kendall_tau=kendall_tau_b(gt, judge), spearman_rho=spearman_rho(gt, judge))
            for key, value in row.items():
                out[f"{key}/{scenario}"] = value
                per_key.setdefault(key, []).append(value)
        for key in (*_MEAN_KEYS, "parse_rate"):
            values = per_key.get(key, [])
            out[key] = sum(values) / len(values) if values else math.nan  # plain mean, as the summarizer
        if rank_agreement:
            for key in ("kendall_tau", "spearman_rho"):
                out[key] = nanmean(per_key.get(key, []))
        return out

    def compute(self) -> dict[str, Tensor]:
        scores = self._scores(self._items(), self._names())
        return {k: torch.tensor(v, dtype=torch.float64) for k, v in scores.items()}

    def win_tables(self) -> dict[str, dict[str, tuple[int, int]]]:
        """scenario -> model -> (ground-truth wins, judge wins) over every candidate model (for plots).
        Under DDP this gathers the states: call it on every rank, like ``compute``."""
        with self._synced():
            counts = self._counts(self._items(), self._names())
        return {s: {m: (c.gt_wins[m], c.judge_wins[m]) for m in sorted(c.gt_wins)} for s, c in counts.items()}

    def bootstrap(
        self,
        n_resamples: int = 1000,
        alpha: float = 0.05,
        seed: int = 0,
        keys: Sequence[str] = ("final", "accuracy", "normalized_diff"),
    ) -> dict[str, tuple[float, float]]:
        """Percentile-bootstrap intervals of the scenario-mean ``keys``: items are resampled within their
        scenario (each keeps its size) and the whole score is recomputed per resample. Items are put in a
        canonical order first, so a DDP run gives the same intervals as one process (call it on every
        rank, like ``compute``). Each resample recomputes every scenario: about a millisecond each."""
        with self._synced():
            items, names = self._items(), self._names()
        if not len(items):
            raise ValueError("bootstrap() needs at least one item")
        order = sorted(range(len(items)), key=items.tolist().__getitem__)
        items = items[torch.tensor(order)]
        with_rank = any(k.startswith(("kendall_tau", "spearman_rho")) for k in keys)

        def statistic(idx: Tensor) -> dict[str, float]:
            scores = self._scores(items[idx], names, rank_agreement=with_rank)
            return {k: scores[k] for k in keys}

        return bootstrap_ci_fn(
            statistic,
            len(items),
            n_resamples=n_resamples,
            alpha=alpha,
            seed=seed,
            strata=items[:, 0],
        )


def _win_counts(winner: Tensor, ref: int, names: Mapping[int, str], candidates: set[str]) -> dict[str, int]:
    """Candidate -> number of rows it won (``winner`` holds the winning model's id, -1 for no side)."""
    wins = dict.fromkeys(sorted(candidates), 0)
    ids, counts = torch.unique(winner[(winner != -1) & (winner != ref)], return_counts=True)
    for m, k in zip(ids.tolist(), counts.tolist()):
        wins[names[m]] += k
    return wins
