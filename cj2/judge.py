"""The one-line way to use a judge: ``cj2.Judge.from_pretrained(path).judge(question, a, b)``.

A :class:`Judge` renders a pairwise judging prompt with a template (:mod:`cj2.data.templates`), lets a
model write its critique and verdict greedily (any :class:`~cj2.generation.Sampler`: a local
``transformers`` model, vLLM, an OpenAI-compatible server), parses the verdict with :mod:`cj2.verdict`,
and, when the model is local, reads P(verdict) from the logits of the candidate verdict tokens at the
verdict slot after the generated critique (arXiv 2507.09104, Sec. 3.2: the verdict is a classification
at one position; :mod:`cj2.evaluation.logits`). ``python -m cj2.evaluate`` and ``python -m cj2.refine`` use
it for every judge kind that generates (``hf``, ``vllm``, ``openai``, any registered generator); every judge
has the shape of :class:`JudgeProtocol`.

Example::

    from cj2 import Judge
    judge = Judge.from_pretrained("outputs/runs/quickstart/hf")          # format cj2_choice, cj2_short
    r = judge.judge("What is 17 * 3?", "51", "41")
    r.verdict, r.prob, r.critique                                       # "A", 0.87, '{"Check A": ...'

Verdicts are in the order the responses were given (``"A"`` = ``response_a``), ``None`` when the output
holds no unambiguous final verdict.

A judge also critiques a single answer (what is wrong, what to fix, whether it is correct), the feedback
``python -m cj2.refine`` hands a policy to revise with (arXiv 2507.09104, Table 5)::

    c = judge.critique("What is 17 * 3?", "41")
    c.verdict, c.critique                          # "no", '{"Problems": "17 * 3 is 51 ...", "Fix": ...'

and rates a single answer from 1 to 10 (``Rating: [[N]]``, template ``cj2_rating``), the pointwise judgment
of best-of-N benchmarks in ratings mode such as RewardBench 2::

    judge.rate("What is 17 * 3?", "51").verdict    # "9"
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from cj2.data.schema import PairwiseItem, PointwiseItem
from cj2.data.templates import JudgeTemplate, get_template
from cj2.verdict import single_token_labels

log = logging.getLogger(__name__)

# The template a format uses when none is named: the one a cj2 judge of that format is trained on.
DEFAULT_TEMPLATES: dict[str, str] = {
    "cj2_choice": "cj2_short",
    "winner_json": "judgerbenchv2",
    "brackets": "mtbench_pair",
    "arena": "arena_hard",
}
# The template of :meth:`Judge.critique` unless one is named: a pointwise critique ending in "Correct".
DEFAULT_CRITIQUE_TEMPLATE = "cj2_critique"
# The template of :meth:`Judge.rate` unless one is named: a pointwise 1-10 rating ending in "Rating: [[N]]".
DEFAULT_RATING_TEMPLATE = "cj2_rating"


@dataclass
class JudgeResult:
    """One judgment: the raw ``output``, the ``critique`` before the final verdict marker (the whole
    output when there is none), the ``verdict`` (``None`` when unparsed), and where the judge exposes
    logits ``probs`` (label -> probability at the verdict slot) and ``prob`` = P(verdict)."""

    verdict: str | None
    critique: str
    output: str
    prob: float | None = None
    probs: dict[str, float] | None = None
    finish_reason: str | None = None
    n_tokens: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class JudgeProtocol(Protocol):
    """What every judge is, whatever computes it: the one shape ``cj2.evaluate``, ``cj2.refine`` and the
    in-training evaluation pass around (:class:`Judge`, :class:`cj2.evaluation.backends.LazyJudge`,
    :class:`cj2.evaluation.backends.PredictionsJudge`, :class:`cj2.evaluation.backends.LogitJudge`).

    * :meth:`judge_items` judges pairwise items *in the order given* (``response_a`` shown as Model A):
      one :class:`JudgeResult` per item, its ``verdict`` in that frame (``"A"``, ``"B"``, ``"tie"``, or
      ``None`` when unparsed); ``keys`` (one per item) seed the judge per prompt and name a recorded
      output; ``on_batch`` is told how many judgments each finished batch holds (a progress bar);
      (:attr:`writes` is ``False`` for a judge that only scores verdict logits; it then raises);
    * :meth:`verdict_probs_for` scores P(label) at the verdict slot without generating (arXiv
      2507.09104, Sec. 3.2) where :attr:`supports_logits`; else it raises;
    * :meth:`critique_batch` critiques single answers (what is wrong, what to fix, ``yes``/``no``), the
      feedback ``cj2.refine`` hands a policy; a judge that cannot write text raises;
    * :meth:`rate_batch` rates single answers 1-10 (verdict ``"1"`` ... ``"10"``, ``None`` unparsed), the
      pointwise judge of best-of-N benchmarks; a judge that cannot write text raises;
    * :attr:`on_cpu`: whether judging computes on this machine's CPU (caps a run); :attr:`n_missing`: the
      judgments asked for that the judge did not have (recorded predictions; 0 otherwise).

    A judge that cannot do one of these raises a ``ValueError`` that says why. Build one from a config
    with :func:`cj2.evaluation.backends.build_judge` (any kind registered in
    :data:`cj2.generation.SAMPLERS`).
    """

    @property
    def writes(self) -> bool: ...

    @property
    def supports_logits(self) -> bool: ...

    @property
    def on_cpu(self) -> bool: ...

    @property
    def n_missing(self) -> int: ...

    def judge_items(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        keys: Sequence[Any] | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[JudgeResult]: ...

    def verdict_probs_for(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        critiques: Sequence[str | None] | None = None,
    ) -> list[dict[str, float] | None]: ...

    def critique_batch(
        self, answers: Sequence[Any], *, keys: Sequence[Any] | None = None
    ) -> list[JudgeResult]: ...

    def rate_batch(
        self, answers: Sequence[Any], *, keys: Sequence[Any] | None = None
    ) -> list[JudgeResult]: ...


def resolve_template(format: str | None = None, template: str | JudgeTemplate | None = None) -> JudgeTemplate:
    """The template for a judge: ``template`` if given (its format must equal ``format`` when both are
    given), else the default template of ``format`` (default ``cj2_choice``: ``cj2_short``)."""
    if template is not None:
        tpl = template if isinstance(template, JudgeTemplate) else get_template(str(template))
        if format is not None and tpl.format != format:
            raise ValueError(
                f"template {tpl.name!r} writes verdicts in format {tpl.format!r}, not {format!r}"
            )
    else:
        fmt = format or "cj2_choice"
        if fmt not in DEFAULT_TEMPLATES:
            raise ValueError(
                f"no default pairwise template for format {fmt!r}; name one with template=... "
                f"(formats with defaults: {sorted(DEFAULT_TEMPLATES)})"
            )
        tpl = get_template(DEFAULT_TEMPLATES[fmt])
    if tpl.kind != "pairwise":
        raise ValueError(f"template {tpl.name!r} is {tpl.kind}; a Judge compares two responses")
    return tpl


def resolve_critique_template(template: str | JudgeTemplate | None = None) -> JudgeTemplate:
    """The template of single-answer critiques: ``template`` (a pointwise template whose format has the
    labels ``yes``/``no``) or :data:`DEFAULT_CRITIQUE_TEMPLATE`."""
    tpl = (
        template
        if isinstance(template, JudgeTemplate)
        else get_template(template or DEFAULT_CRITIQUE_TEMPLATE)
    )
    if tpl.kind != "pointwise" or tpl.format != "correctness":
        raise ValueError(
            f"template {tpl.name!r} ({tpl.kind}, format {tpl.format!r}) cannot write a critique: it needs a "
            "pointwise template in the 'correctness' format (yes/no), e.g. "
            f"{DEFAULT_CRITIQUE_TEMPLATE!r}"
        )
    return tpl


def resolve_rating_template(template: str | JudgeTemplate | None = None) -> JudgeTemplate:
    """The template of single-answer ratings: ``template`` (a pointwise template in the ``score`` format,
    labels ``1``..``10``) or :data:`DEFAULT_RATING_TEMPLATE`."""
    tpl = (
        template if isinstance(template, JudgeTemplate) else get_template(template or DEFAULT_RATING_TEMPLATE)
    )
    if tpl.kind != "pointwise" or tpl.format != "score":
        raise ValueError(
            f"template {tpl.name!r} ({tpl.kind}, format {tpl.format!r}) cannot rate an answer: it needs a "
            f"pointwise template in the 'score' format (Rating: [[N]]), e.g. {DEFAULT_RATING_TEMPLATE!r}"
        )
    return tpl


def _as_item(pair: Any, index: int) -> PairwiseItem:
    """A pair given as an item, a mapping (question, response_a, response_b, ...) or a 3-tuple."""
    if isinstance(pair, PairwiseItem):
        return pair
    if isinstance(pair, Mapping):
        missing = [k for k in ("question", "response_a", "response_b") if k not in pair]
        if missing:
            raise ValueError(f"pair {index}: missing {missing}")
        extra = {k: pair[k] for k in ("conversation", "domain", "language") if pair.get(k) is not None}
        return PairwiseItem(
            id=str(pair.get("id", index)),
            question=pair["question"],
            response_a=pair["response_a"],
            response_b=pair["response_b"],
            label="tie",
            **extra,
        )
    if isinstance(pair, (tuple, list)) and len(pair) == 3:
        return PairwiseItem(
            id=str(index), question=pair[0], response_a=pair[1], response_b=pair[2], label="tie"
        )
    raise TypeError(
        f"pair {index}: expected a PairwiseItem, a mapping or a (question, response_a, response_b) "
        f"tuple, got {type(pair).__name__}"
    )


class Judge:
    """A pairwise judge: a template plus a sampler, and a local model for verdict probabilities.

    Build one with :meth:`from_pretrained` (a local or hub model, or the embedded ``"smollm2_135m"``) or
    :meth:`from_sampler` (any sampler: vLLM, an OpenAI-compatible endpoint; no probabilities then).
    Decoding is greedy with at most ``max_new_tokens`` new tokens and stops at the verdict marker.
    """

    def __init__(
        self,
        template: JudgeTemplate,
        sampler: Any,
        *,
        model: Any = None,
        tokenizer: Any = None,
        batch_size: int = 8,
        max_new_tokens: int = 512,
        verdict_probs: bool = True,
        analysis: str = "",
        critique_template: str | JudgeTemplate | None = None,
        rating_template: str | JudgeTemplate | None = None,
    ):
        self.template = template
        self.critique_template = resolve_critique_template(critique_template)
        self.rating_template = resolve_rating_template(rating_template)
        self.sampler = sampler
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.verdict_probs = bool(verdict_probs)
        self._scorer = None
        if model is not None and tokenizer is not None and single_token_labels(template.format):
            from cj2.evaluation.logits import VerdictLogitScorer

            self._scorer = VerdictLogitScorer(
                model, tokenizer, template, batch_size=batch_size, analysis=analysis
            )

    # ------------------------------------------------------------------------------------------ building
    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str = "smollm2_135m",
        format: str | None = None,
        template: str | JudgeTemplate | None = None,
        *,
        dtype: str = "auto",
        device: str = "auto",
        batch_size: int = 8,
        max_new_tokens: int = 512,
        verdict_probs: bool = True,
        trust_remote_code: bool = False,
        analysis: str = "",
        critique_template: str | JudgeTemplate | None = None,
        rating_template: str | JudgeTemplate | None = None,
    ) -> Judge:
        """Load a judge model (an exported cj2 checkpoint folder, a hub id, ``"smollm2_135m"``, ``"tiny"``).

        ``format`` (default ``cj2_choice``) picks the default template (:data:`DEFAULT_TEMPLATES`);
        ``template`` names one explicitly. With neither, a folder exported by ``cj2.train`` is prompted with
        the template it was trained on (its ``cj2_judge.json``). ``dtype="auto"``: bfloat16 on a GPU or
        CPU that runs it natively,
        else float32; ``device="auto"``: CUDA when available.
        """
        import torch

        from cj2.generation.hf import HFSampler
        from cj2.models import load_model, load_tokenizer

        if template is None and format is None:  # an exported cj2 judge names the template it was trained on
            from cj2.models.export import read_judge_card

            template = read_judge_card(path_or_id).get("template")
        tpl = resolve_template(format, template)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype == "auto":
            if device.startswith("cuda"):
                dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
            else:
                from cj2.runtime import cpu_supports_bf16

                # native bf16 (AVX512-BF16 / AMX) runs a forward about 1.5x faster than fp32
                dtype = "bfloat16" if cpu_supports_bf16() else "float32"
        tokenizer = load_tokenizer(path_or_id, trust_remote_code=trust_remote_code)
        model = load_model(path_or_id, dtype=dtype, tokenizer=tokenizer, trust_remote_code=trust_remote_code)
        model = model.to(device)
        model.eval()
        sampler = HFSampler(model, tokenizer, batch_size=batch_size, device=device)
        return cls(
            tpl,
            sampler,
            model=model,
            tokenizer=tokenizer,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            verdict_probs=verdict_probs,
            analysis=analysis,
            critique_template=critique_template,
            rating_template=rating_template,
        )

    @classmethod
    def from_sampler(
        cls,
        sampler: Any,
        format: str | None = None,
        template: str | JudgeTemplate | None = None,
        **kwargs: Any,
    ) -> Judge:
        """A judge over any :class:`~cj2.generation.Sampler` (no verdict probabilities)."""
        return cls(resolve_template(format, template), sampler, **kwargs)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def format(self) -> str:
        return self.template.format

    @property
    def supports_logits(self) -> bool:
        """Whether the judge can score verdict probabilities (a local model and a single-token format)."""
        return self._scorer is not None

    @property
    def on_cpu(self) -> bool:
        """Whether the judge computes on this machine's CPU (a local model there); a judge over a remote
        endpoint costs this machine nothing."""
        return self.model is not None and next(self.model.parameters()).device.type == "cpu"

    @property
    def n_missing(self) -> int:
        return 0  # a generating judge has every judgment it is asked for

    @property
    def writes(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"Judge(template={self.template.name!r}, format={self.format!r}, sampler={self.sampler!r})"

    # ------------------------------------------------------------------------------------------ judging
    def prompt(self, item: PairwiseItem, *, style_note: str | None = None) -> list[dict[str, str]]:
        """The chat messages the judge sees for ``item`` (as given: ``response_a`` is Model A)."""
        return self.template.render(item, style_note=style_note)

    def critique(
        self,
        question: str,
        answer: str,
        *,
        reference: str | None = None,
        conversation: list | None = None,
        domain: str | None = None,
        language: str = "en",
    ) -> JudgeResult:
        """Critique one answer with :attr:`critique_template` (default ``cj2_critique``): the result's
        ``critique`` says what is wrong and what to fix, its ``verdict`` is ``"yes"`` (the judge calls the
        answer correct), ``"no"``, or ``None`` when the output holds no unambiguous verdict."""
        one = _answer_fields(question, answer, reference, conversation, domain, language)
        return self.critique_batch([one])[0]

    def critique_batch(
        self, answers: Sequence[Any], *, keys: Sequence[Any] | None = None
    ) -> list[JudgeResult]:
        """Critique many answers, in order: ``(question, answer)`` tuples, mappings with ``question`` and
        ``answer`` (optional ``reference``, ``conversation``, ``domain``, ``language``) or
        :class:`~cj2.data.schema.PointwiseItem`. ``keys`` (one per answer) seed the sampler per prompt,
        as in :meth:`judge_items`. Greedy, at most ``max_new_tokens`` tokens, stops at the verdict."""
        return self._pointwise(self.critique_template, answers, keys)

    def rate(
        self,
        question: str,
        answer: str,
        *,
        reference: str | None = None,
        conversation: list | None = None,
        domain: str | None = None,
        language: str = "en",
    ) -> JudgeResult:
        """Rate one answer from 1 to 10 with :attr:`rating_template` (default ``cj2_rating``): the result's
        ``verdict`` is the rating as text (``"1"`` ... ``"10"``), ``None`` when the output holds no valid
        final ``Rating: [[N]]``; ``critique`` is the assessment before it. The pointwise judge of best-of-N
        benchmarks in ratings mode (RewardBench 2)."""
        one = _answer_fields(question, answer, reference, conversation, domain, language)
        return self.rate_batch([one])[0]

    def rate_batch(self, answers: Sequence[Any], *, keys: Sequence[Any] | None = None) -> list[JudgeResult]:
        """Rate many answers, in order (given as for :meth:`critique_batch`); ``keys`` seed the sampler per
        prompt. Greedy, at most ``max_new_tokens`` tokens, stops at the rating."""
        return self._pointwise(self.rating_template, answers, keys)

    def _pointwise(
        self, tpl: JudgeTemplate, answers: Sequence[Any], keys: Sequence[Any] | None
    ) -> list[JudgeResult]:
        """One greedy judgment per answer with the pointwise template ``tpl``, its verdict parsed."""
        if not answers:
            return []
        prompts = [tpl.render(_as_answer(a, i)) for i, a in enumerate(answers)]
        return self._generate(prompts, tpl.format, keys)

    def judge(
        self,
        question: str,
        response_a: str,
        response_b: str,
        *,
        conversation: list | None = None,
        domain: str | None = None,
        language: str = "en",
        style_note: str | None = None,
    ) -> JudgeResult:
        """Judge one pair; see :class:`JudgeResult`."""
        pair = {
            "question": question,
            "response_a": response_a,
            "response_b": response_b,
            "conversation": conversation,
            "domain": domain,
            "language": language,
        }
        return self.judge_batch([pair], style_note=style_note)[0]

    def judge_batch(
        self, pairs: Sequence[Any], *, style_note: str | None = None, keys: Sequence[Any] | None = None
    ) -> list[JudgeResult]:
        """Judge many pairs (items, mappings or ``(question, a, b)`` tuples), in order."""
        return self.judge_items(
            [_as_item(p, i) for i, p in enumerate(pairs)], style_note=style_note, keys=keys
        )

    def judge_items(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        keys: Sequence[Any] | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[JudgeResult]:
        """Judge pairwise items as presented. ``keys`` (one per item) seed the sampler per prompt, so a
        result does not depend on what else is in the call; ``on_batch`` is called with the number of
        prompts in each decoded batch (a sampler whose ``generate`` takes ``on_batch``, as
        :class:`~cj2.generation.HFSampler` does)."""
        if not items:
            return []
        prompts = [self.prompt(it, style_note=style_note) for it in items]
        results = self._generate(prompts, self.format, keys, on_batch)
        if self._scorer is not None and self.verdict_probs:
            # P(verdict) after the judge's own critique: one forward pass per item up to the verdict slot.
            probs = self._scorer.score_messages(
                prompts, languages=[it.language for it in items], critiques=[r.output for r in results]
            )
            for r, p in zip(results, probs):
                r.probs = p
                if p is not None and r.verdict in p:
                    r.prob = p[r.verdict]
        return results

    def _generate(
        self,
        prompts: list[list[dict[str, str]]],
        format: str,
        keys: Sequence[Any] | None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[JudgeResult]:
        """One greedy sample per prompt (at most ``max_new_tokens`` tokens, stopping at the verdict of
        ``format``), split into critique and verdict: the path of judgments and critiques alike."""
        from cj2.generation.base import SamplingParams

        if not prompts:
            return []
        params = SamplingParams(max_new_tokens=self.max_new_tokens, temperature=0.0, stop_on_verdict=format)
        kwargs = {} if on_batch is None else {"on_batch": on_batch}
        samples = self.sampler.generate(
            prompts, 1, params, keys=list(keys) if keys is not None else None, **kwargs
        )
        results = []
        for s in (row[0] for row in samples):
            verdict, critique = split_critique(s.text, format)
            results.append(
                JudgeResult(
                    verdict=verdict,
                    critique=critique,
                    output=s.text,
                    finish_reason=s.finish_reason,
                    n_tokens=s.n_tokens,
                )
            )
        return results

    def verdict_probs_for(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        critiques: Sequence[str | None] | None = None,
    ) -> list[dict[str, float] | None]:
        """Verdict-logit scoring without generation (a forced answer skeleton, or the given critiques):
        ``label -> P(label)`` per item, ``None`` where the item cannot be scored."""
        if self._scorer is None:
            raise ValueError(
                f"{self!r} has no local model with single-token verdict labels; verdict "
                "probabilities need the hf backend and a format like cj2_choice"
            )
        return self._scorer.score_items(items, style_note=style_note, critiques=critiques)


def _answer_fields(
    question: str,
    answer: str,
    reference: str | None,
    conversation: list | None,
    domain: str | None,
    language: str,
) -> dict[str, Any]:
    """One answer to critique or rate, as the mapping :func:`_as_answer` reads."""
    return {
        "question": question,
        "answer": answer,
        "reference": reference,
        "conversation": conversation,
        "domain": domain,
        "language": language,
    }


def _as_answer(answer: Any, index: int) -> PointwiseItem:
    """One answer to critique, given as an item, a mapping (question, answer, ...) or a 2-tuple."""
    if isinstance(answer, PointwiseItem):
        return answer
    if isinstance(answer, Mapping):
        missing = [k for k in ("question", "answer") if answer.get(k) is None]
        if missing:
            raise ValueError(f"answer {index}: missing {missing}")
        extra = {
            k: answer[k]
            for k in ("reference", "conversation", "domain", "language")
            if answer.get(k) is not None
        }
        return PointwiseItem(
            id=str(answer.get("id", index)), question=answer["question"], response=answer["answer"], **extra
        )
    if isinstance(answer, (tuple, list)) and len(answer) == 2:
        return PointwiseItem(id=str(index), question=answer[0], response=answer[1])
    raise TypeError(
        f"answer {index}: expected a PointwiseItem, a mapping or a (question, answer) tuple, "
        f"got {type(answer).__name__}"
    )


def split_critique(text: str, format: str) -> tuple[str | None, str]:
    """``(verdict, critique)``: the final verdict of ``text`` and the text before its marker (the whole
    text when there is no verdict). The marker's start comes from :mod:`cj2.verdict`, the one module that
    knows what a verdict looks like."""
    from cj2.verdict import locate_marker

    found = locate_marker(text, format)
    if found is None:
        return None, text
    start = found[1]
    # the quote or markdown stars that open the marker's key belong to the marker, not the critique
    return found[0], text[:start].rstrip().rstrip("\"'“”‘’*").rstrip()
