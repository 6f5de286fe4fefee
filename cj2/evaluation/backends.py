"""The judges of ``python -m cj2.evaluate`` and ``python -m cj2.refine``, from one registry.

Every kind in :data:`cj2.generation.SAMPLERS` is a judge (:class:`cj2.judge.JudgeProtocol`):
:func:`build_judge` makes a greedy :class:`cj2.Judge` over any registered generator (``vllm``, ``openai``,
``scripted``, one registered by a user with ``@register_sampler``), and the kinds that build their judge
another way register it here with :func:`cj2.generation.register_judge`:

* ``hf``: a local model (:meth:`cj2.Judge.from_pretrained`), with P(verdict) and verdict-logit scoring;
* ``predictions``: outputs recorded earlier (by cj2 or any other tool), scored without running a model;
* ``logits``: a local model that only scores verdict logits (no generation; ``evaluate.mode=logits``).

A predictions file is JSONL (or any layout :func:`cj2.data.io.read_rows` reads), one row per judgment:
``{"id": <item id>, "order": "AB" | "BA", "output": <the judge's raw text>}``. ``order`` says where the
item's first response (``response_a`` as the benchmark file has it) was shown: ``"AB"`` in position A,
``"BA"`` in position B. An optional ``"style": true`` marks an output of the style-probe prompt. cj2's own
per-item file (``judgments.jsonl``) has this shape, so a run's outputs can be re-scored; its ``pass``
field (``"style"``) is understood too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, read_rows
from cj2.data.schema import PairwiseItem
from cj2.data.templates import JudgeTemplate
from cj2.generation import SAMPLERS, SamplerSpec, build_sampler, config_on_cpu, register_judge
from cj2.generation.base import Lazy
from cj2.judge import Judge, JudgeProtocol, JudgeResult, split_critique
from cj2.runtime import SECRET_KEY_RE

log = logging.getLogger(__name__)

ORDERS = ("AB", "BA")

# The judge's own keys, besides its kind's: the prompt template and the greedy decoding's batch and length.
JUDGE_KEYS = ("template", "batch_size", "max_new_tokens")
# Keys of a local model's judge (the ``hf`` and ``logits`` kinds).
_LOCAL_KEYS = ("name_or_path", "dtype", "device", "trust_remote_code")
# Keys that change how fast a run goes, not what it computes (left out of the resume fingerprint).
OPERATIONAL_KEYS = ("batch_size", "device", "max_concurrency", "timeout_s", "max_retries", "engine_kwargs")


class PredictionsJudge:
    """Recorded outputs looked up by ``(item id, order, style)`` and parsed with the template's format.

    ``missing="error"`` (default): asking for a judgment the file lacks is a :class:`DataError` naming
    the file, the id and the order; ``"unparsed"``: it counts as an unparsed verdict (and in ``n_missing``).
    A bad line or a duplicated key is a ``DataError`` naming ``file:line``.
    """

    supports_logits = False
    on_cpu = False  # recorded: judging costs this machine nothing
    writes = True

    def __init__(self, path: str | os.PathLike, template: JudgeTemplate, *, missing: str = "error"):
        if missing not in ("error", "unparsed"):
            raise ValueError(f"judge.missing={missing!r}; expected 'error' or 'unparsed'")
        self.path = Path(path)
        self.template = template
        self.missing = missing
        self.n_missing = 0
        self.outputs: dict[tuple[str, str, bool], str] = {}
        for line, row in read_rows(self.path):
            for key in ("id", "order", "output"):
                if row.get(key) is None:
                    raise DataError("missing required field", path=self.path, line=line, field=key)
            if isinstance(row["id"], bool) or not isinstance(row["id"], (str, int)):
                raise DataError(
                    f"expected a string or integer id, got {type(row['id']).__name__}",
                    path=self.path,
                    line=line,
                    field="id",
                )
            if row["order"] not in ORDERS:
                raise DataError(
                    f"order {row['order']!r} is not one of {ORDERS}", path=self.path, line=line, field="order"
                )
            if not isinstance(row["output"], str):
                raise DataError(
                    f"expected a string, got {type(row['output']).__name__}",
                    path=self.path,
                    line=line,
                    field="output",
                )
            style = bool(row.get("style", False)) or row.get("pass") == "style"
            key = (str(row["id"]), row["order"], style)
            if key in self.outputs:
                raise DataError(
                    f"a second output for item {key[0]!r} in order {key[1]}"
                    + (" (style probe)" if style else ""),
                    path=self.path,
                    line=line,
                    field="id",
                )
            self.outputs[key] = row["output"]

    @property
    def format(self) -> str:
        return self.template.format

    def __repr__(self) -> str:
        return f"PredictionsJudge(path={str(self.path)!r}, {len(self.outputs)} outputs)"

    def judge_items(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        keys: Sequence[tuple[str, str, bool]] | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[JudgeResult]:
        if keys is None:
            raise ValueError("the predictions judge needs keys=[(item id, order, style), ...]")
        results = []
        for key in keys:
            text = self.outputs.get(tuple(key))
            if text is None:
                if self.missing == "error":
                    raise DataError(
                        f"no recorded output for item {key[0]!r} in order {key[1]}"
                        + (" with the style prompt" if key[2] else "")
                        + "; set judge.missing=unparsed to count it as unparsed",
                        path=self.path,
                        field="id",
                    )
                self.n_missing += 1
                results.append(JudgeResult(verdict=None, critique="", output="", meta={"missing": True}))
                continue
            verdict, critique = split_critique(text, self.format)
            results.append(JudgeResult(verdict=verdict, critique=critique, output=text))
        if on_batch is not None:
            on_batch(len(results))
        return results

    def verdict_probs_for(self, items: Sequence[PairwiseItem], **_: Any) -> list[dict[str, float] | None]:
        raise ValueError(f"{self!r}: recorded outputs hold no verdict logits; use evaluate.mode=generate")

    def critique_batch(self, answers: Sequence[Any], **_: Any) -> list[JudgeResult]:
        raise ValueError(f"{self!r}: recorded predictions cannot critique new answers")

    def rate_batch(self, answers: Sequence[Any], **_: Any) -> list[JudgeResult]:
        raise ValueError(f"{self!r}: recorded pairwise predictions cannot rate new answers")


class LogitJudge:
    """A judge that only scores verdict logits (:class:`cj2.judge.JudgeProtocol`, no generation): the
    in-training validation's judge over the model in training, and the ``logits`` judge kind.
    ``score(items, style_note=..., critiques=...)`` gives ``label -> P(label)`` per item."""

    supports_logits = True
    writes = False
    n_missing = 0

    def __init__(self, score: Callable[..., list[dict[str, float] | None]], *, on_cpu: bool):
        self.score = score
        self.on_cpu = on_cpu

    def __repr__(self) -> str:
        return "LogitJudge()"

    def verdict_probs_for(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        critiques: Sequence[str | None] | None = None,
    ) -> list[dict[str, float] | None]:
        return self.score(items, style_note=style_note, critiques=critiques)

    def judge_items(self, items: Sequence[PairwiseItem], **_: Any) -> list[JudgeResult]:
        raise ValueError("a verdict-logit judge writes no judgments; use evaluate.mode=logits")

    def critique_batch(self, answers: Sequence[Any], **_: Any) -> list[JudgeResult]:
        raise ValueError("a verdict-logit judge writes no critiques; use a judge that generates")

    def rate_batch(self, answers: Sequence[Any], **_: Any) -> list[JudgeResult]:
        raise ValueError("a verdict-logit judge writes no ratings; use a judge that generates")


def check_no_secrets(cfg: Mapping[str, Any], where: str = "judge") -> None:
    """Refuse secret values in a config (an API key belongs in an environment variable)."""
    for key, value in cfg.items():
        if isinstance(key, str) and SECRET_KEY_RE.search(key) and value not in (None, ""):
            raise ValueError(
                f"{where}.{key}: secrets never go in configs (they would be saved with the run); "
                f"put the key in an environment variable and name it with {where}.api_key_env"
            )
        if isinstance(value, Mapping):
            check_no_secrets(value, f"{where}.{key}")


def judge_spec(cfg: Mapping[str, Any]) -> SamplerSpec:
    """The registered kind of a judge config's ``backend`` (an error that lists the kinds otherwise)."""
    backend = cfg.get("backend")
    if not isinstance(backend, str) or backend not in SAMPLERS:
        raise ValueError(
            f"judge.backend={backend!r}; expected one of the registered kinds: {', '.join(SAMPLERS)}"
        )
    return SAMPLERS[backend]


def judge_keys(backend: str) -> tuple[str, ...]:
    """The keys a judge config of kind ``backend`` accepts besides ``backend`` and ``name``."""
    spec = judge_spec({"backend": backend})
    return (*(spec.judge_keys if spec.judge is not None else spec.keys), *JUDGE_KEYS)


def build_judge(
    cfg: Mapping[str, Any],
    template: JudgeTemplate,
    *,
    analysis: str = "",
    critique_template: str | JudgeTemplate | None = None,
) -> JudgeProtocol:
    """The judge of a judge config (``conf/judge/*.yaml``: ``backend`` names a kind of
    :data:`cj2.generation.SAMPLERS`), prompting pairs with ``template`` (and answers to critique with
    ``critique_template``). ``analysis`` is the text of the forced answer skeleton's analysis fields in
    verdict-logit scoring."""
    cfg = dict(cfg)
    check_no_secrets(cfg)
    spec = judge_spec(cfg)
    options = {k: v for k, v in cfg.items() if k not in ("backend", "name")}
    unknown = sorted(set(options) - set(judge_keys(spec.name)))
    if unknown:
        raise ValueError(
            f"judge (backend {spec.name!r}): unknown key(s) {unknown}; expected some of "
            f"{sorted(judge_keys(spec.name))}"
        )
    settings = {
        "batch_size": int(options.pop("batch_size", None) or 8),
        "max_new_tokens": int(options.pop("max_new_tokens", None) or 512),
        "analysis": analysis,
        "critique_template": critique_template,
    }
    options.pop("template", None)  # the caller resolved it
    if spec.judge is not None:
        return spec.judge(options, template, settings)
    return Judge.from_sampler(
        build_sampler({"backend": spec.name, **options}),
        template=template,
        batch_size=settings["batch_size"],
        max_new_tokens=settings["max_new_tokens"],
        critique_template=critique_template,
    )


@register_judge("hf", keys=(*_LOCAL_KEYS, "verdict_probs"), verdict_logits=True)
def _hf_judge(options: dict[str, Any], template: JudgeTemplate, settings: dict[str, Any]) -> Judge:
    return Judge.from_pretrained(
        options.get("name_or_path") or "smollm2_135m",
        template=template,
        dtype=options.get("dtype") or "auto",
        device=options.get("device") or "auto",
        batch_size=settings["batch_size"],
        max_new_tokens=settings["max_new_tokens"],
        verdict_probs=bool(options.get("verdict_probs", True)),
        trust_remote_code=bool(options.get("trust_remote_code")),
        analysis=settings["analysis"],
        critique_template=settings["critique_template"],
    )


@register_judge("logits", keys=_LOCAL_KEYS, local=True, verdict_logits=True, writes=False)
def _logits_judge(
    options: dict[str, Any], template: JudgeTemplate, settings: dict[str, Any]
) -> JudgeProtocol:
    judge = _hf_judge({**options, "verdict_probs": True}, template, settings)
    if not judge.supports_logits:
        raise ValueError(
            f"judge (backend 'logits'): template {template.name!r} has no single-token verdict labels; "
            "verdict-logit scoring needs a format like cj2_choice"
        )
    return LogitJudge(judge.verdict_probs_for, on_cpu=judge.on_cpu)


@register_judge("predictions", keys=("path", "missing"), eager=True)
def _predictions_judge(
    options: dict[str, Any], template: JudgeTemplate, settings: dict[str, Any]
) -> PredictionsJudge:
    if not options.get("path"):
        raise ValueError("judge.path is required for the predictions backend (a JSONL of recorded outputs)")
    return PredictionsJudge(options["path"], template, missing=options.get("missing") or "error")


class LazyJudge(Lazy):
    """A judge built from its config on first use (:func:`build_judge`), so a re-run whose results are all
    stored never loads a model. What a run needs beforehand (verdict logits, whether it writes judgments,
    whether it computes on this machine's CPU) comes from the kind's registry entry and the config."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        template: JudgeTemplate,
        *,
        analysis: str = "",
        critique_template: str | JudgeTemplate | None = None,
    ):
        from cj2.verdict import single_token_labels

        self.cfg = dict(cfg)
        self.template = template
        check_no_secrets(self.cfg)
        spec = judge_spec(self.cfg)
        self.backend = spec.name
        self.writes = spec.writes
        self.supports_logits = spec.verdict_logits and single_token_labels(template.format)
        self.on_cpu = config_on_cpu(self.cfg)
        super().__init__(
            lambda: build_judge(self.cfg, template, analysis=analysis, critique_template=critique_template)
        )
        if spec.eager:  # e.g. a recorded file is read (and checked) now: a bad file fails fast
            self.get()

    @property
    def judge(self) -> JudgeProtocol:
        return self.get()

    @property
    def n_missing(self) -> int:
        return self.get().n_missing if self.built else 0

    def judge_items(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        keys: Sequence[Any] | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[JudgeResult]:
        return self.get().judge_items(items, style_note=style_note, keys=keys, on_batch=on_batch)

    def verdict_probs_for(
        self,
        items: Sequence[PairwiseItem],
        *,
        style_note: str | None = None,
        critiques: Sequence[str | None] | None = None,
    ) -> list[dict[str, float] | None]:
        return self.get().verdict_probs_for(items, style_note=style_note, critiques=critiques)

    def critique_batch(
        self, answers: Sequence[Any], *, keys: Sequence[Any] | None = None
    ) -> list[JudgeResult]:
        return self.get().critique_batch(answers, keys=keys)

    def rate_batch(self, answers: Sequence[Any], *, keys: Sequence[Any] | None = None) -> list[JudgeResult]:
        return self.get().rate_batch(answers, keys=keys)


def recorded_ids(judge: JudgeProtocol) -> tuple[str, list[str]] | None:
    """The file and the item ids (in file order) of a recorded-predictions judge, also behind a
    :class:`LazyJudge`; ``None`` for any other judge."""
    if isinstance(judge, LazyJudge) and judge.backend == "predictions":
        judge = judge.judge
    if not isinstance(judge, PredictionsJudge):
        return None
    return str(judge.path), [key[0] for key in judge.outputs]


def trained_template(cfg: Mapping[str, Any]) -> str | None:
    """The template an exported cj2 judge was trained on (its ``cj2_judge.json``) when the config's model is
    such a folder, else ``None``."""
    from cj2.models.export import read_judge_card

    path = cfg.get("name_or_path")
    return read_judge_card(str(path)).get("template") if path else None


def judge_label(cfg: Mapping[str, Any]) -> str:
    """A short readable name for a judge or generator config (run folder names, reports): the last two
    parts of its model or file path, else its ``name``, else its kind."""
    backend = cfg.get("backend")
    spec = SAMPLERS.get(backend) if isinstance(backend, str) else None
    default = "smollm2_135m" if spec is not None and spec.local else None
    source = cfg.get("path") if backend == "predictions" else cfg.get("name_or_path") or default
    if source is None:
        return str(cfg.get("name") or backend)
    parts = [p for p in Path(str(source)).parts if p not in ("/", ".", "..")][-2:]
    return "_".join(parts) or str(backend)
