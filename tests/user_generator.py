"""A generator as a user would add one in their own module: ``@register_sampler`` and nothing else.

``first_pick`` answers a judging prompt with a short check and a verdict for the first choice of the
format the caller stops on (Model A of a pair; "yes" of a critique), and any other prompt with
``Answer: 1``. Importing this module registers it; :func:`unregister` takes it out again.
"""

from __future__ import annotations

from cj2.generation import SAMPLERS, Sample, SamplingParams, finalize, register_sampler, sample_seed
from cj2.generation.base import check_request
from cj2.verdict import render_verdict

NAME = "first_pick"


class FirstPick:
    def __init__(self, note: str = "Checked."):
        self.note = note
        self.calls = 0

    def generate(self, prompts, n: int, params: SamplingParams, *, keys=None) -> list[list[Sample]]:
        keys = check_request(prompts, n, keys)
        self.calls += 1
        fmt = params.stop_on_verdict
        if fmt:
            text = f"{self.note}\n{render_verdict('yes' if fmt == 'correctness' else 'A', fmt)}"
        else:
            text = f"{self.note}\nAnswer: 1"
        out = []
        for i, key in enumerate(keys):
            done, finish = finalize(text, "stop", params)
            out.append([Sample(done, finish, i, j, sample_seed(params.seed, key, j), 4) for j in range(n)])
        return out


@register_sampler(NAME, keys=("note",))
def _first_pick(options: dict) -> FirstPick:
    return FirstPick(**options)


def unregister() -> None:
    SAMPLERS.pop(NAME, None)
