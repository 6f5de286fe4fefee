"""The embedded benchmark: a miniature JudgerBenchV2 built in code from the verifiable built-in tasks.

JudgerBenchV2 (arXiv 2507.09104, Sec. 4) pairs the answers of ten candidate models with those of one
reference model (GPT-4o-mini) on 100 queries in each of ten scenarios; a judge is scored on its sample
accuracy and on how well the per-model win counts it implies match the ground truth's (Eq. 5). This
module builds the same shape offline, so ``python -m cj2.evaluate`` runs on a fresh machine:

* **scenarios**: the task families of one split of :mod:`cj2.data.tasks` (the ``test`` split by default:
  arithmetic, unit conversion, strings and dates, held out from training as far as the splits allow);
* **queries**: ``n_queries`` generated problems per scenario, each with a computed answer and a realistic
  wrong answer;
* **candidate models**: simulated "models" of known skill (default six, from 0.2 to 0.9). In every
  scenario a model answers exactly ``round(skill * n_queries)`` queries correctly (which ones is a seeded
  draw), so the ground-truth win counts differ by model and are known in advance;
* **reference model**: a foil whose answer in each pair is right exactly when the candidate's is wrong,
  so every pair has one correct response and a verifiable winner (JudgerBenchV2's ground truth always
  names one; two right or two wrong answers would give a pair no truth can decide). Its answers therefore
  vary across the pairs of one query; this is what buys a ground truth without a panel of judges;
* **responses**: each model writes in its own voice (terse, worked, ...), assigned independently of skill
  so that length or style says nothing about correctness; wrong answers show the wrong working.

Items use the ``judgerbenchv2`` adapter's layout: response A is the reference, B the candidate,
``meta["model_a"]``/``meta["model_b"]`` name them and ``domain`` is the scenario. Everything is a pure
function of the arguments.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cj2.data.schema import PairwiseItem
from cj2.data.tasks import SPLITS, generate_items

REFERENCE_MODEL = "reference"

# name -> skill (probability of a correct answer). Names carry no hint of the skill or its rank. Six
# models (JudgerBenchV2 has ten) keep the default CPU run short; with 10 queries their ground-truth win
# counts (9, 8, 6, 5, 3, 2) all differ.
DEFAULT_MODELS: dict[str, float] = {
    "alpha": 0.6,
    "bravo": 0.9,
    "charlie": 0.3,
    "delta": 0.8,
    "echo": 0.5,
    "foxtrot": 0.2,
}

# How each "model" writes an answer. {value}: the answer it gives; {work}: its working, "; "-joined.
_VOICES: tuple[str, ...] = (
    "{value}",
    "{Work}. So the answer is {value}.",
    "The answer is {value}.",
    "Let me work through it. {Work}. Therefore the result is {value}.",
    "Final answer: {value}",
    "{value} (because {work})",
    "Step by step: {work}. Result: {value}.",
    "It comes to {value}.",
)
_REFERENCE_VOICE = "Working it out: {work}. The result is {value}."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _write(voice: str, value: str, work: Sequence[str]) -> str:
    joined = "; ".join(work)
    return voice.format(value=value, work=joined, Work=_cap(joined))


@dataclass
class EmbeddedBenchmark:
    """The built benchmark: ``items`` plus what generated them (for reports and tests)."""

    items: list[PairwiseItem]
    scenarios: list[str]
    models: dict[str, float]
    n_queries: int
    reference_model: str = REFERENCE_MODEL
    gt_wins: dict[str, dict[str, int]] = field(default_factory=dict)  # scenario -> model -> wins

    def __len__(self) -> int:
        return len(self.items)


def build_embedded(
    n_queries: int = 10,
    models: Mapping[str, float] | None = None,
    scenarios: Sequence[str] | None = None,
    *,
    split: str = "test",
    seed: int = 0,
) -> EmbeddedBenchmark:
    """Build the embedded benchmark (module docstring): ``len(scenarios) * n_queries * len(models)`` pairs.

    ``scenarios`` are task families of ``split`` (default: all of them); ``models`` maps a candidate name
    to its skill in [0, 1] (at least two models; JudgerBenchV2 has ten, the default six).
    """
    models = dict(DEFAULT_MODELS if models is None else models)
    if len(models) < 2:
        raise ValueError(f"the embedded benchmark needs at least two candidate models, got {list(models)}")
    if REFERENCE_MODEL in models:
        raise ValueError(f"{REFERENCE_MODEL!r} is the reference model's name; rename that candidate")
    for name, skill in models.items():
        if not 0.0 <= float(skill) <= 1.0:
            raise ValueError(f"embedded benchmark: model {name!r} has skill {skill!r}, not a probability")
    if n_queries < 1:
        raise ValueError(f"n_queries must be >= 1, got {n_queries}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS)}")
    families = list(SPLITS[split]) if scenarios is None else [str(s) for s in scenarios]
    unknown = [s for s in families if s not in SPLITS[split]]
    if unknown:
        raise ValueError(f"scenarios {unknown} are not task families of split {split!r} ({SPLITS[split]})")
    names = sorted(models)
    voices = {name: _VOICES[i % len(_VOICES)] for i, name in enumerate(names)}
    items: list[PairwiseItem] = []
    gt_wins: dict[str, dict[str, int]] = {}
    for scenario in families:
        problems = generate_items(n_queries, split=split, seed=seed, families=[scenario])
        gt_wins[scenario] = {}
        start = len(items)  # meta["index"]: the position in the scenario, as in a JudgerBenchV2 file
        for name in names:
            n_right = round(float(models[name]) * n_queries)
            right = set(
                random.Random(f"cj2-embedded|{seed}|{scenario}|{name}").sample(range(n_queries), n_right)
            )
            gt_wins[scenario][name] = n_right
            for q, problem in enumerate(problems):
                meta = problem.meta
                check = meta["check"]
                good = (meta["truth"], check["work"])
                bad = (meta["wrong_value"], check["wrong_work"])
                cand_right = q in right
                cand_value, cand_work = good if cand_right else bad
                ref_value, ref_work = bad if cand_right else good
                index = len(items) - start
                items.append(
                    PairwiseItem(
                        id=f"embedded/{scenario}/{q}/{name}",
                        question=problem.question,
                        response_a=_write(_REFERENCE_VOICE, ref_value, ref_work),
                        response_b=_write(voices[name], cand_value, cand_work),
                        label="B" if cand_right else "A",
                        domain=scenario,
                        language="en",
                        source="embedded",
                        meta={
                            "model_a": REFERENCE_MODEL,
                            "model_b": name,
                            "scenario": scenario,
                            "query": q,
                            "index": index,
                            "skill": float(models[name]),
                            "problem_id": problem.id,
                        },
                    )
                )
    return EmbeddedBenchmark(
        items=items,
        scenarios=families,
        models={n: float(models[n]) for n in names},
        n_queries=n_queries,
        gt_wins=gt_wins,
    )
