"""Judge backends for ``python -m cj2.evaluate``: ``hf``, ``vllm``, ``openai`` and ``predictions``.

The first three are a :class:`cj2.Judge` over the curation samplers (greedy decoding); ``predictions``
scores outputs recorded earlier (by cj2 or any other tool) without running a model.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cj2.data.io import DataError, read_rows
from cj2.data.schema import PairwiseItem
from cj2.data.templates import JudgeTemplate
from cj2.judge import Judge, JudgeResult, split_critique
from cj2.runtime import SECRET_KEY_RE

log = logging.getLogger(__name__)

BACKENDS = ("hf", "vllm", "openai", "predictions")
ORDERS = ("AB", "BA")

# Keys of each backend's config (besides ``backend``); anything else is a typo and an error.
_KEYS: dict[str, tuple[str, ...]] = {
    "hf": (
        "name_or_path",
        "template",
        "dtype",
        "device",
        "batch_size",
        "max_new_tokens",
        "verdict_probs",
        "trust_remote_code",
    ),
    "vllm": ("name_or_path", "template", "batch_size", "max_new_tokens", "engine_kwargs"),
    "openai": (
        "name_or_path",
        "template",
        "base_url",
        "api_key_env",
        "batch_size",
        "max_new_tokens",
        "max_concurrency",
        "timeout_s",
        "max_retries",
    ),
    "predictions": ("path", "template", "missing", "batch_size"),
}
# Keys that change how fast a run goes, not what it computes (left out of the resume fingerprint).
OPERATIONAL_KEYS = ("batch_size", "device", "max_concurrency", "timeout_s", "max_retries", "engine_kwargs")


class PredictionsJudge:
    """Recorded outputs looked up by ``(item id, order, style)`` and parsed with the template's format.

    ``missing="error"`` (default): asking for a judgment the file lacks is a :class:`DataError` naming
    the file, the id and the order; ``"unparsed"``: it counts as an unparsed verdict (and in ``n_missing``).
    A bad line or a duplicated key is a ``DataError`` naming ``file:line``.
    """

    supports_logits = False

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
        return results


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


def build_judge(
    cfg: Mapping[str, Any], template: JudgeTemplate, *, analysis: str = ""
) -> Judge | PredictionsJudge:
    """The judge of an ``evaluate`` config's ``judge`` section (see ``conf/judge/*.yaml``). ``analysis`` is
    the text of the forced answer skeleton's analysis fields in verdict-logit scoring."""
    cfg = dict(cfg)
    check_no_secrets(cfg)
    backend = cfg.pop("backend", None)
    if backend not in BACKENDS:
        raise ValueError(f"judge.backend={backend!r}; expected one of {BACKENDS}")
    cfg.pop("name", None)
    unknown = sorted(set(cfg) - set(_KEYS[backend]))
    if unknown:
        raise ValueError(
            f"judge (backend {backend!r}): unknown key(s) {unknown}; expected some of "
            f"{sorted(_KEYS[backend])}"
        )
    batch_size = int(cfg.get("batch_size") or 8)
    max_new_tokens = int(cfg.get("max_new_tokens") or 512)
    if backend == "predictions":
        if not cfg.get("path"):
            raise ValueError(
                "judge.path is required for the predictions backend (a JSONL of recorded outputs)"
            )
        return PredictionsJudge(cfg["path"], template, missing=cfg.get("missing") or "error")
    if backend == "hf":
        return Judge.from_pretrained(
            cfg.get("name_or_path") or "smollm2_135m",
            template=template,
            dtype=cfg.get("dtype") or "auto",
            device=cfg.get("device") or "auto",
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            verdict_probs=bool(cfg.get("verdict_probs", True)),
            trust_remote_code=bool(cfg.get("trust_remote_code")),
            analysis=analysis,
        )
    from cj2.generation import build_sampler

    if backend == "vllm":
        sampler = build_sampler(
            {
                "backend": "vllm",
                "name_or_path": cfg.get("name_or_path"),
                "engine_kwargs": dict(cfg.get("engine_kwargs") or {}),
            }
        )
    else:
        options = {
            k: cfg[k]
            for k in (
                "base_url",
                "name_or_path",
                "api_key_env",
                "max_concurrency",
                "timeout_s",
                "max_retries",
            )
            if cfg.get(k) is not None
        }
        sampler = build_sampler({"backend": "openai", **options})
    return Judge.from_sampler(
        sampler, template=template, batch_size=batch_size, max_new_tokens=max_new_tokens
    )


class LazyJudge:
    """A judge built on first use, so a re-run whose results are all stored never loads a model.

    What the run needs to know beforehand (whether verdict logits are available, whether the judge
    computes on this machine's CPU) is read from the config.
    """

    def __init__(self, cfg: Mapping[str, Any], template: JudgeTemplate, *, analysis: str = ""):
        from cj2.verdict import single_token_labels

        self.cfg = dict(cfg)
        self.template = template
        self.analysis = analysis
        self.backend = self.cfg.get("backend")
        check_no_secrets(self.cfg)
        self._judge: Judge | PredictionsJudge | None = None
        self.supports_logits = self.backend == "hf" and single_token_labels(template.format)
        if self.backend == "predictions":  # read (and check) the file now: a bad file fails fast
            self._judge = build_judge(self.cfg, template, analysis=analysis)

    @property
    def on_cpu(self) -> bool:
        if self.backend != "hf":
            return False  # remote or recorded judges cost this machine nothing
        device = str(self.cfg.get("device") or "auto")
        if device == "auto":
            import torch

            return not torch.cuda.is_available()
        return device == "cpu"

    @property
    def judge(self) -> Judge | PredictionsJudge:
        if self._judge is None:
            self._judge = build_judge(self.cfg, self.template, analysis=self.analysis)
        return self._judge

    @property
    def n_missing(self) -> int:
        return getattr(self._judge, "n_missing", 0)

    def judge_items(self, *args: Any, **kwargs: Any) -> list[JudgeResult]:
        return self.judge.judge_items(*args, **kwargs)

    def verdict_probs_for(self, *args: Any, **kwargs: Any) -> list[dict[str, float] | None]:
        return self.judge.verdict_probs_for(*args, **kwargs)  # type: ignore[union-attr]


def judge_label(cfg: Mapping[str, Any]) -> str:
    """A short readable name for a judge config (run folder names, reports)."""
    backend = cfg.get("backend")
    if backend == "predictions":
        source = str(cfg.get("path") or "predictions")
    else:
        source = str(cfg.get("name_or_path") or ("smollm2_135m" if backend == "hf" else backend))
    parts = [p for p in Path(source).parts if p not in ("/", ".", "..")][-2:]
    return "_".join(parts) or str(backend)
