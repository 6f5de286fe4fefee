"""Judgments of built-in items: :func:`build_judgment` and :func:`default_verdict`.

A judgment recomputes the answer in a few steps, says which response matches, and ends with the verdict in
the template's format (arXiv 2507.09104, Sec. 3.2). A *flawed* judgment holds a realistic mistake (it
repeats the wrong answer's error, or slips on an intermediate value yet lands on the truth); a sound check
with a wrong verdict misreads which response says what. The sections each template needs (short checks,
truth / answers / match, the critical-thinking sections, prose) are written here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from cj2.data.schema import PairwiseItem, PointwiseItem
from cj2.data.tasks.base import capitalise, require_builtin
from cj2.data.templates import JudgeTemplate, get_template
from cj2.verdict import labels_for

OTHER = {"A": "B", "B": "A"}


def _as_rng(rng: random.Random | int | None, *default_key: object) -> random.Random:
    if isinstance(rng, random.Random):
        return rng
    if rng is None:
        return random.Random("|".join(map(str, ("judgment", *default_key))))
    return random.Random(f"judgment|{int(rng)}|{'|'.join(map(str, default_key))}")


@dataclass
class _Belief:
    """What the judge's check concluded: its work, the value it believes, the value it reads in each
    response and whether that matches."""

    work: list[str]
    value: str
    quoted: dict[str, str]
    ok: dict[str, bool]
    flawed: bool
    sound: bool  # the work recomputes the truth correctly


def _views(meta: dict[str, Any]) -> tuple[str, str]:
    """What a check says the right and the wrong answer give (the values, or their views)."""
    return meta.get("truth_view", meta["truth"]), meta.get("wrong_view", meta["wrong_value"])


def _pairwise_belief(item: PairwiseItem, flawed: bool, verdict: str) -> _Belief:
    m, c = item.meta, item.meta["check"]
    truth, wrong = _views(m)
    value = {item.label: truth, OTHER[item.label]: wrong}
    right = verdict == item.label
    if flawed and not right:  # the check repeats the wrong answer's mistake and believes it
        work, believed, quoted = c["wrong_work"], wrong, dict(value)
    elif flawed:  # a slip in the check, the conclusion right anyway
        work, believed, quoted = c["slip_work"], truth, dict(value)
    elif right:
        work, believed, quoted = c["work"], truth, dict(value)
    else:  # a sound computation, but the judge reads the two answers the wrong way round
        work, believed, quoted = c["work"], truth, {"A": value["B"], "B": value["A"]}
    ok = {pos: quoted[pos] == believed for pos in ("A", "B")}
    return _Belief(list(work), believed, quoted, ok, flawed, sound=not flawed)


def _judge_words(rng: random.Random, ok: bool) -> tuple[str, str]:
    """(adjective, verb phrase): ("correct", "matches") or ("wrong", "does not match"), varied."""
    if ok:
        return rng.choice(["correct", "right"]), rng.choice(["matches", "agrees"])
    return rng.choice(["wrong", "incorrect"]), rng.choice(["does not match", "is off"])


def _short_sections(b: _Belief, rng: random.Random) -> dict[str, str]:
    work = "; ".join(b.work)
    out = {}
    work_at = rng.choice("AB")
    for pos in "AB":
        adj, verb = _judge_words(rng, b.ok[pos])
        v = b.quoted[pos]
        if pos == work_at:
            out[f"Check {pos}"] = rng.choice(
                [
                    f"{capitalise(work)}. {pos} gives {v}: {adj}.",
                    f"Recomputing: {work}. {pos}'s {v} is {adj}.",
                    f"{capitalise(work)}, so {pos}'s {v} {verb}.",
                ]
            )
        else:
            out[f"Check {pos}"] = rng.choice(
                [
                    f"{pos} gives {v}: {adj}.",
                    f"{pos}'s {v} is {adj}.",
                    f"{pos} says {v}, which {verb}.",
                ]
            )
    return out


def _truth_sections(b: _Belief, rng: random.Random) -> dict[str, str]:
    """``cj2_check``: the truth first, then what each answer gives, then which answer gives the truth.

    Each step is one a small model can take: state a fact or a one-step computation (``Truth``), copy each
    answer's value with its label (``Answers``: ``wet (Model A); dry (Model B)``), and copy the value that
    equals the truth together with its label (``Match``: ``dry (Model B)``), so that the verdict is read off
    the text rather than bound to a letter in one step (small models bind contents to option letters
    poorly). One wording on purpose: varied phrasings would spread a small judge's signal thin; template
    diversity comes from the templates.
    """
    answers = "; ".join(f"{b.quoted[pos]} (Model {pos})" for pos in "AB")
    matches = [pos for pos in "AB" if b.ok[pos]]
    match = (
        f"{b.quoted[matches[0]]} (Model {matches[0]})"
        if len(matches) == 1
        else ("both" if matches else "neither")
    )
    return {"Truth": capitalise("; ".join(b.work)) + ".", "Answers": answers, "Match": match}


def _critical_sections(item: PairwiseItem, b: _Belief, winner: str, rng: random.Random) -> dict[str, str]:
    work = "; ".join(b.work)
    demand = item.meta.get("demand", "the answer to the question")
    out = {
        "User's Demand": rng.choice(
            [f"The user wants {demand}.", f"Find {demand}.", f"The question asks for {demand}."]
        )
    }
    for pos in "AB":
        v = b.quoted[pos]
        if b.ok[pos]:
            out[f"Strengths of Model {pos}"] = rng.choice(
                [
                    f"It gives {v}, which agrees with the recomputed result.",
                    f"Its answer {v} is right.",
                    f"{capitalise(v)} is the correct result.",
                ]
            )
            out[f"Weaknesses of Model {pos}"] = rng.choice(
                ["None found.", "No error in the result.", "Nothing significant."]
            )
        else:
            out[f"Strengths of Model {pos}"] = rng.choice(
                ["It gives a direct answer.", "It commits to a single answer.", "It answers in a clear form."]
            )
            weak = f"{capitalise(v)} is wrong; the result should be {b.value}."
            # Naming the mistake is only possible when the judge reads the real wrong answer correctly.
            if b.sound and v == _views(item.meta)[1] and item.meta.get("hint"):
                weak += f" {capitalise(item.meta['hint'])}."
            out[f"Weaknesses of Model {pos}"] = weak
    loser = OTHER[winner]
    out["Reasoning"] = rng.choice(
        [
            f"Checking: {work}. Only Model {winner}'s answer matches, so Model {winner} is better.",
            f"Recomputing gives {work}. Model {winner} has it right and Model {loser} does not.",
            f"{capitalise(work)}. The result is {b.value}, which Model {winner} gives.",
        ]
    )
    return out


def _prose(b: _Belief, winner: str, party: str, rng: random.Random) -> str:
    work = "; ".join(b.work)
    adj = {pos: _judge_words(rng, b.ok[pos])[0] for pos in "AB"}
    qa, qb = b.quoted["A"], b.quoted["B"]
    return rng.choice(
        [
            f"{capitalise(work)}. {party} A gives {qa}, which is {adj['A']}; "
            f"{party} B gives {qb}, which is {adj['B']}. "
            f"{party} {winner} answers the question correctly.",
            f"Let me check: {work}. {party} A answers {qa} ({adj['A']}) "
            f"and {party} B answers {qb} ({adj['B']}). "
            f"{party} {winner} is correct, so it is the better answer.",
            f"My own answer: {work}, so the result is {b.value}. {party} A says {qa}, which is {adj['A']}. "
            f"{party} B says {qb}, which is {adj['B']}. {party} {winner} is better.",
        ]
    )


def _pointwise_judgment(
    item: PointwiseItem, template: JudgeTemplate, flawed: bool, verdict: str | None, rng: random.Random
) -> str:
    m, c = item.meta, item.meta["check"]
    if verdict is None:
        verdict = default_verdict(item, template, rng)
    if verdict not in labels_for(template.format):
        raise ValueError(f"verdict {verdict!r} is not a label of format {template.format!r}")
    says_correct = verdict == "yes" if template.format == "correctness" else int(verdict) >= 6
    right = says_correct == bool(item.correct)
    truth, wrong = _views(m)
    value = truth if item.correct else wrong
    other = wrong if item.correct else truth
    if flawed and not right:  # believes the wrong value: agrees with a wrong response, rejects a right one
        work, believed, quoted = c["wrong_work"], wrong, value
    elif flawed:
        work, believed, quoted = c["slip_work"], truth, value
    elif right:
        work, believed, quoted = c["work"], truth, value
    else:  # sound computation, response misread
        work, believed, quoted = c["work"], truth, other
    ok = quoted == believed
    adj, verb = _judge_words(rng, ok)
    w = "; ".join(work)
    text = rng.choice(
        [
            f"{capitalise(w)}. The response gives {quoted}, which is {adj}.",
            f"Recomputing: {w}. The response's {quoted} {verb}.",
        ]
    )
    if template.format == "score":
        text += " " + ("It answers the question accurately." if ok else "The final answer is wrong.")
    keys = template.response_keys(item.language)
    sections = {keys[0]: text} if len(keys) == 1 else text
    return template.render_response(sections, verdict, language=item.language)


def default_verdict(
    item: PairwiseItem | PointwiseItem, template: JudgeTemplate, rng: random.Random | int | None = None
) -> str:
    """The gold verdict of a built-in item under ``template``: the correct position (pairwise), ``yes``/``no``
    (correctness), or a score of 8-10 for a correct response and 1-3 for a wrong one (score; seeded)."""
    if template.kind == "pairwise":
        return item.label
    if template.format == "correctness":
        return "yes" if item.correct else "no"
    if template.format == "score":
        r = _as_rng(rng, item.id, template.name, "score")
        return str(r.choice([8, 9, 10]) if item.correct else r.choice([1, 2, 3]))
    raise ValueError(f"no default verdict for pointwise format {template.format!r}")


def build_judgment(
    item: PairwiseItem | PointwiseItem,
    template: JudgeTemplate | str,
    *,
    flawed: bool = False,
    verdict: str | None = None,
    rng: random.Random | int | None = None,
) -> str:
    """A critical-thinking judgment of a built-in item (arXiv 2507.09104, Sec. 3.2) in ``template``'s format.

    The reasoning recomputes the answer in a few steps ("17 * 3 = 51; 51 + 8 = 59"), says which response
    matches, and ends with ``verdict`` (default: the correct one) via ``template.render_response``. With
    ``flawed=True`` the check holds a realistic mistake: for a wrong verdict it repeats the wrong answer's
    error (a miscomputed value, a missed constraint) and believes it; for the right verdict it miscomputes
    an intermediate value yet lands on the right answer. ``flawed=False`` with a wrong verdict gives a
    sound computation whose judge misreads which response says what. Wording is drawn from several
    sentence templates with ``rng`` (default: seeded by item, template, flawed and verdict).
    """
    template = get_template(template) if isinstance(template, str) else template
    require_builtin(item)
    r = _as_rng(rng, item.id, template.name, flawed, verdict)
    if template.kind != item.kind:
        raise TypeError(f"template {template.name!r} is {template.kind} but item {item.id!r} is {item.kind}")
    if template.kind == "pointwise":
        return _pointwise_judgment(item, template, flawed, verdict, r)
    verdict = item.label if verdict is None else verdict
    if verdict not in ("A", "B"):
        raise ValueError(
            f"built-in items have a correct and a wrong answer; verdict must be 'A' or 'B', got {verdict!r}"
        )
    if verdict not in labels_for(template.format):
        raise ValueError(f"verdict {verdict!r} is not a label of format {template.format!r}")
    belief = _pairwise_belief(item, flawed, verdict)
    keys = template.response_keys(item.language)
    if set(keys) == {"Check A", "Check B"}:
        sections: dict[str, str] | str = _short_sections(belief, r)
    elif keys == ("Truth", "Answers", "Match"):
        sections = _truth_sections(belief, r)
    elif template.name == "cj2_direct":
        sections = ""  # verdict only
    elif set(keys) == {
        "User's Demand",
        "Strengths of Model A",
        "Weaknesses of Model A",
        "Strengths of Model B",
        "Weaknesses of Model B",
        "Reasoning",
    }:
        sections = _critical_sections(item, belief, verdict, r)
    elif len(keys) <= 1:
        text = _prose(belief, verdict, template.party, r)
        sections = {keys[0]: text} if keys else text
    else:
        raise ValueError(
            f"build_judgment does not know how to fill the keys {list(keys)} of template {template.name!r}"
        )
    return template.render_response(sections, verdict, language=item.language)
