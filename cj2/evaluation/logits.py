"""Verdict-logit scoring: a judge's verdict read from the logits of the candidate verdict tokens.

CompassJudger-2 treats judging as a classification emitted at one designated position of the judgment
(arXiv 2507.09104, Sec. 3.2, Eq. 6 and Eq. 12): the verdict token. Reading the model's distribution over
the candidate verdict tokens at that slot scores a judge with one forward pass per pair instead of a
generated critique, and gives a probability per verdict, the source of the calibration metrics.

The slot. The prompt is followed by a response that leads up to the verdict:

* **forced** (default): the template's answer skeleton with an empty (or short, ``analysis=``) analysis,
  e.g. ``{"Check A": "", "Check B": "", "Choice": "Model`` for ``cj2_short``;
* **after a critique**: the judge's own generated text up to its final verdict marker (or, when it wrote
  none, the text followed by the canonical marker).

For each candidate label the full text (prompt + response with that label) is tokenised; the first token
at which the texts differ is the verdict slot, and the token each text has there is that label's
candidate token, exactly as the collator finds ``verdict_candidates`` for training. The logits predicting
that position give P(label) = softmax over the candidates. Only formats whose labels are distinct single
tokens qualify (:func:`cj2.verdict.single_token_labels`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from cj2.data.schema import Message, PairwiseItem
from cj2.data.templates import JudgeTemplate
from cj2.verdict import label_surface, labels_for, locate_verdict, render_verdict, single_token_labels


class VerdictSlotError(ValueError):
    """The candidate labels do not separate at one token in this context."""


@dataclass
class VerdictSlot:
    """Token ids up to the verdict slot and one candidate token id per label (``labels`` order)."""

    prefix_ids: list[int]
    candidate_ids: list[int]
    labels: tuple[str, ...]


def check_format(format: str) -> tuple[str, ...]:
    """The labels of ``format`` if verdict-logit scoring applies to it, else a ``ValueError``."""
    if not single_token_labels(format):
        raise ValueError(
            f"verdict-logit scoring needs a format whose labels are distinct single tokens "
            f"(cj2_choice, brackets, winner_json, correctness); {format!r} has labels that share a "
            "first token or none"
        )
    return labels_for(format)


def forced_response(template: JudgeTemplate, label: str, *, language: str = "en", analysis: str = "") -> str:
    """The template's answer with ``analysis`` in every analysis field, ending in ``label``'s verdict."""
    keys = template.response_keys(language)
    sections: dict[str, str] | str = {k: analysis for k in keys} if keys else analysis
    text = template.render_response(sections, label, language=language)
    return text if keys else text.lstrip()  # a prose answer with no analysis starts at the verdict


def responses_by_label(
    template: JudgeTemplate, *, language: str = "en", analysis: str = "", critique: str | None = None
) -> dict[str, str]:
    """One response text per candidate label, identical except for the label (module docstring)."""
    labels = check_format(template.format)
    if critique is None:
        return {lab: forced_response(template, lab, language=language, analysis=analysis) for lab in labels}
    found = locate_verdict(critique, template.format)
    if found is not None:
        _, start, end = found
        return {
            lab: critique[:start] + label_surface(lab, template.format) + critique[end:] for lab in labels
        }
    # No verdict in the critique: close it with the canonical marker, as the template asks.
    head = critique.rstrip()
    return {lab: f"{head}\n{render_verdict(lab, template.format)}" for lab in labels}


def prompt_text(tokenizer: Any, messages: list[Message]) -> str:
    """The chat-formatted prompt with the generation prompt, as the ``hf`` sampler encodes it."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def verdict_slot(tokenizer: Any, prompt: str, responses: dict[str, str]) -> VerdictSlot:
    """The verdict slot of ``prompt`` + each response (module docstring); :class:`VerdictSlotError` when
    the labels do not differ first at one shared position with distinct tokens."""
    labels = tuple(responses)
    ids = [tokenizer(prompt + responses[lab], add_special_tokens=False)["input_ids"] for lab in labels]
    k = min(len(x) for x in ids)
    for other in ids[1:]:
        common = next(
            (i for i, (a, b) in enumerate(zip(ids[0], other)) if a != b), min(len(ids[0]), len(other))
        )
        k = min(k, common)
    if any(len(x) <= k for x in ids):
        raise VerdictSlotError("a candidate text ends before the labels differ")
    candidates = [x[k] for x in ids]
    if len(set(candidates)) != len(candidates):
        raise VerdictSlotError(f"labels {labels} share the token at the verdict slot")
    if k == 0:
        raise VerdictSlotError("the labels differ at the first token: there is no prefix to condition on")
    return VerdictSlot(prefix_ids=ids[0][:k], candidate_ids=candidates, labels=labels)


@contextlib.contextmanager
def _eval_mode(model: torch.nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def slot_logits(
    model: torch.nn.Module, slots: Sequence[VerdictSlot], *, pad_token_id: int, batch_size: int = 8
) -> list[list[float]]:
    """The logits of each slot's candidate tokens at its verdict position, in float32 (one list per slot).

    Slots are left-padded into batches of ``batch_size`` (longest first, so a batch holds similar
    lengths), with position ids counted from each row's first real token, and only the last position's
    logits are computed where the model supports ``logits_to_keep``.
    """
    out: list[list[float] | None] = [None] * len(slots)
    order = sorted(range(len(slots)), key=lambda i: (-len(slots[i].prefix_ids), i))
    device = _device(model)
    with _eval_mode(model):
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(slots[i].prefix_ids) for i in rows)
            ids = torch.full((len(rows), width), int(pad_token_id), dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                p = slots[i].prefix_ids
                ids[r, width - len(p) :] = torch.tensor(p, dtype=torch.long)
                mask[r, width - len(p) :] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            kwargs = {
                "input_ids": ids.to(device),
                "attention_mask": mask.to(device),
                "position_ids": positions.to(device),
            }
            try:
                logits = model(**kwargs, logits_to_keep=1).logits[:, -1]
            except TypeError:  # a model without logits_to_keep: compute all, keep the last
                logits = model(**kwargs).logits[:, -1]
            logits = logits.float().cpu()
            for r, i in enumerate(rows):
                out[i] = logits[r, slots[i].candidate_ids].tolist()
    return out  # type: ignore[return-value]


def probabilities(logits: Sequence[float], labels: Sequence[str]) -> dict[str, float]:
    """Softmax of candidate logits as ``label -> probability``."""
    probs = torch.softmax(torch.tensor(list(logits), dtype=torch.float64), dim=0).tolist()
    return dict(zip(labels, probs))


class VerdictLogitScorer:
    """Verdict probabilities of a local causal LM for judge prompts (module docstring).

    ``max_length`` bounds prompt + response tokens (default: the model's ``max_position_embeddings``);
    a longer item gets ``None`` (counted as unparsed by the metrics), as does an item whose labels do not
    separate at one token.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        template: JudgeTemplate,
        *,
        batch_size: int = 8,
        analysis: str = "",
        max_length: int | None = None,
    ):
        self.labels = check_format(template.format)
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set one (left padding needs it)")
        self.model = model
        self.tokenizer = tokenizer
        self.template = template
        self.batch_size = int(batch_size)
        self.analysis = analysis
        config_max = getattr(getattr(model, "config", None), "max_position_embeddings", None)
        self.max_length = int(max_length or config_max or 1 << 30)
        self.skipped: dict[str, int] = {}

    def slot(
        self, messages: list[Message], *, language: str = "en", critique: str | None = None
    ) -> VerdictSlot | None:
        """The verdict slot for a rendered prompt, or ``None`` (counted in ``skipped``) when it is
        unusable."""
        responses = responses_by_label(
            self.template, language=language, analysis=self.analysis, critique=critique
        )
        try:
            slot = verdict_slot(self.tokenizer, prompt_text(self.tokenizer, messages), responses)
        except VerdictSlotError:
            self.skipped["no_single_token_slot"] = self.skipped.get("no_single_token_slot", 0) + 1
            return None
        if len(slot.prefix_ids) >= self.max_length:
            self.skipped["overlong"] = self.skipped.get("overlong", 0) + 1
            return None
        return slot

    def score_messages(
        self,
        prompts: Sequence[list[Message]],
        *,
        languages: Sequence[str] | None = None,
        critiques: Sequence[str | None] | None = None,
    ) -> list[dict[str, float] | None]:
        """``label -> P(label)`` at the verdict slot of each prompt (``None`` where unusable)."""
        languages = list(languages) if languages is not None else ["en"] * len(prompts)
        critiques = list(critiques) if critiques is not None else [None] * len(prompts)
        slots = [
            self.slot(list(m), language=lang, critique=c) for m, lang, c in zip(prompts, languages, critiques)
        ]
        usable = [i for i, s in enumerate(slots) if s is not None]
        logits = slot_logits(
            self.model,
            [slots[i] for i in usable],
            pad_token_id=self.tokenizer.pad_token_id,
            batch_size=self.batch_size,
        )
        out: list[dict[str, float] | None] = [None] * len(prompts)
        for i, lg in zip(usable, logits):
            out[i] = probabilities(lg, self.labels)
        return out

    def score_items(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        critiques: Sequence[str | None] | None = None,
    ) -> list[dict[str, float] | None]:
        """:meth:`score_messages` for pairwise items rendered with the template (as presented)."""
        prompts = [self.template.render(it, style_note=style_note) for it in items]
        return self.score_messages(prompts, languages=[it.language for it in items], critiques=critiques)


def argmax_label(probs: dict[str, float] | None) -> str | None:
    """The most probable label (the first in label order on an exact tie), ``None`` for ``None``."""
    if not probs:
        return None
    return max(probs, key=lambda lab: (probs[lab], -list(probs).index(lab)))
