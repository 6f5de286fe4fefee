"""``simulated`` backend: a programmatic teacher for the built-in verifiable tasks. A CPU stand-in only.

Rejection sampling (arXiv 2507.09104, Sec. 3.2, Eq. 3) needs a generator whose judgments are sometimes
right and sometimes wrong; the paper uses Qwen2.5-72B-Instruct. To study the method on a CPU, this
teacher writes critical-thinking judgments of the built-in items (:mod:`cj2.data.tasks`) with known
error rates:

* with probability ``p_correct`` the judgment reaches the gold verdict, otherwise a wrong one;
* a right verdict usually comes with a sound check, but with probability ``p_flawed_given_correct`` it
  rides on a flawed one (a miscomputed intermediate value that happens to land on the right answer);
* a wrong verdict usually comes with a flawed check (the wrong response's error, believed), but with
  probability ``p_sound_given_wrong`` it follows a sound check (the judge misreads which response says
  what), as real teachers do.

Each :class:`~cj2.generation.base.Sample` carries ``meta = {"flawed": bool, "verdict": str,
"verdict_correct": bool}``, so the curation statistics can report how often kept samples hold flawed
reasoning: the failure that a verifiable reward on the verdict alone cannot see. Everything is a pure
function of ``(params.seed, prompt key, sample index)``, the key being the item's id unless ``keys=`` is
given. This teacher only knows the built-in items and is never the default for real data.

Prompts and items. The teacher needs each prompt's item: ``generate(prompts, n, params, items=[...])``
with one item per prompt (``needs_items`` is True so a pipeline can tell), and optionally
``templates=[...]`` (one template name per prompt, the one the prompt was rendered with) so that each
judgment ends in the verdict format its prompt asks for; otherwise the teacher's ``template`` is used.
The prompt text itself is not read.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from cj2.generation.base import Message, PromptKey, Sample, SamplingParams, check_request
from cj2.generation.scripted import ScriptedSampler


class SimulatedTeacher:
    """A teacher that judges built-in items right with probability ``p_correct`` (module docstring)."""

    needs_items = True

    def __init__(
        self,
        p_correct: float = 0.7,
        p_flawed_given_correct: float = 0.1,
        p_sound_given_wrong: float = 0.1,
        template: str = "cj2_critical",
    ):
        for name, p in (
            ("p_correct", p_correct),
            ("p_flawed_given_correct", p_flawed_given_correct),
            ("p_sound_given_wrong", p_sound_given_wrong),
        ):
            if not 0.0 <= float(p) <= 1.0:
                raise ValueError(f"SimulatedTeacher: {name}={p!r} is not a probability in [0, 1]")
        from cj2.data.templates import get_template

        get_template(template)  # a KeyError naming the known templates for a typo
        self.p_correct = float(p_correct)
        self.p_flawed_given_correct = float(p_flawed_given_correct)
        self.p_sound_given_wrong = float(p_sound_given_wrong)
        self.template = template

    def __repr__(self) -> str:
        return (
            f"SimulatedTeacher(p_correct={self.p_correct}, p_flawed_given_correct="
            f"{self.p_flawed_given_correct}, p_sound_given_wrong={self.p_sound_given_wrong}, "
            f"template={self.template!r})"
        )

    def judge(self, item: Any, template_name: str, seed: int) -> tuple[str, dict[str, Any]]:
        """One judgment of ``item`` in ``template_name``'s format, drawn with ``seed``; returns
        (text, meta)."""
        from cj2.data.tasks import build_judgment, default_verdict
        from cj2.data.templates import get_template

        template = get_template(template_name)
        rng = random.Random(seed)
        correct = rng.random() < self.p_correct
        if correct:
            flawed = rng.random() < self.p_flawed_given_correct
        else:
            flawed = rng.random() >= self.p_sound_given_wrong
        gold = default_verdict(item, template)  # item-seeded: the same gold for every sample
        verdict = gold if correct else _wrong_verdict(item, template.format, gold, rng)
        # The wording varies per sample: its own generator, derived from the same seed.
        text = build_judgment(
            item, template, flawed=flawed, verdict=verdict, rng=random.Random(rng.getrandbits(64))
        )
        return text, {"flawed": flawed, "verdict": verdict, "verdict_correct": correct}

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
        items: Sequence[Any] | None = None,
        templates: Sequence[str] | None = None,
    ) -> list[list[Sample]]:
        if items is None:
            raise ValueError(
                "the simulated teacher needs the item of each prompt: generate(..., items=[...])"
            )
        if len(items) != len(prompts):
            raise ValueError(f"items has {len(items)} entries for {len(prompts)} prompts")
        if templates is not None and len(templates) != len(prompts):
            raise ValueError(f"templates has {len(templates)} entries for {len(prompts)} prompts")
        if keys is None:
            keys = [item.id for item in items]
        keys = check_request(prompts, n, keys)
        by_key = {
            key: (item, templates[i] if templates is not None else self.template)
            for i, (key, item) in enumerate(zip(keys, items))
        }

        def script(messages: list[Message], key: PromptKey, j: int, seed: int) -> tuple[str, dict[str, Any]]:
            item, template_name = by_key[key]
            return self.judge(item, template_name, seed)

        # The scripted backend applies max_new_tokens, stop strings and stop_on_verdict like every backend.
        return ScriptedSampler(script).generate(prompts, n, params, keys=keys)


def _wrong_verdict(item: Any, fmt: str, gold: str, rng: random.Random) -> str:
    """A verdict that disagrees with ``gold``: the other response, the other answer, a score on the
    wrong side."""
    if fmt == "correctness":
        return "no" if gold == "yes" else "yes"
    if fmt == "score":
        # A score of 6 or more calls the response correct (cj2.data.tasks reads scores that way).
        return str(rng.choice([1, 2, 3]) if item.correct else rng.choice([8, 9, 10]))
    others = [label for label in ("A", "B") if label != gold]
    if len(others) != 1:
        raise ValueError(f"item {getattr(item, 'id', '?')!r}: no wrong verdict for gold {gold!r}")
    return others[0]
