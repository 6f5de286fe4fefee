"""``scripted`` backend: fixed outputs for plumbing tests, through the same post-processing as every backend.

A scripted "model" returns texts it was given, as if it had generated them: a text longer than
``max_new_tokens`` is truncated there (``"length"``), a shorter one ends as if with an end-of-sequence
token (``"stop"``), and stop strings and ``stop_on_verdict`` cut it exactly as for the real backends
(:func:`cj2.generation.base.finalize`). Without a tokenizer a "token" is a word with its leading
whitespace (:func:`cj2.generation.base.pieces`), and ``n_tokens`` counts the tokens that cover the
returned text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cj2.generation.base import (
    Message,
    PromptKey,
    Sample,
    SamplingParams,
    check_request,
    finalize,
    pieces,
    sample_seed,
)

# fn(messages, prompt_key, sample_index, seed) -> text, or (text, meta) to attach Sample.meta
ScriptFn = Callable[[list[Message], PromptKey, int, int], "str | tuple[str, dict[str, Any]]"]


class ScriptedSampler:
    """Return scripted texts: ``outputs[key][j]`` for sample ``j`` of the prompt with key ``key``.

    ``outputs`` is a mapping from prompt key (the index, or the ``keys=`` given to ``generate``) to a
    list of at least ``n`` texts, or a callable ``fn(messages, key, sample_index, seed)`` returning the text
    or ``(text, meta)``, ``meta`` becoming the sample's :attr:`~cj2.generation.base.Sample.meta`.
    ``tokenizer`` (optional, with ``encode``/``decode``) makes truncation count real tokens.
    ``calls`` records the ``(n_prompts, n, params)`` of each call, for tests.
    """

    def __init__(self, outputs: Mapping[PromptKey, Sequence[str]] | ScriptFn, *, tokenizer: Any = None):
        self.outputs = outputs
        self.tokenizer = tokenizer
        self.calls: list[tuple[int, int, SamplingParams]] = []

    def __repr__(self) -> str:
        kind = "callable" if callable(self.outputs) else f"{len(self.outputs)} scripted prompts"
        return f"ScriptedSampler({kind})"

    def _text(self, messages: list[Message], key: PromptKey, j: int, seed: int) -> str | tuple[str, dict]:
        if callable(self.outputs):
            return self.outputs(messages, key, j, seed)
        if key not in self.outputs:
            raise KeyError(f"scripted sampler: no outputs for prompt key {key!r}")
        texts = self.outputs[key]
        if j >= len(texts):
            raise ValueError(
                f"scripted sampler: prompt key {key!r} has {len(texts)} scripted outputs, "
                f"sample {j} was asked for"
            )
        return texts[j]

    def _truncate(self, text: str, max_new_tokens: int) -> tuple[str, str, list[str]]:
        """Cut to ``max_new_tokens`` tokens; returns (text, raw finish, the kept tokens as strings)."""
        if self.tokenizer is not None:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            toks = [self.tokenizer.decode([i]) for i in ids]
        else:
            toks = pieces(text)
        if len(toks) > max_new_tokens:
            kept = toks[:max_new_tokens]
            if self.tokenizer is not None:
                return self.tokenizer.decode(ids[:max_new_tokens]), "length", kept
            return "".join(kept), "length", kept
        return text, "stop", toks

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
    ) -> list[list[Sample]]:
        keys = check_request(prompts, n, keys)
        self.calls.append((len(prompts), n, params))
        results = []
        for i, (messages, key) in enumerate(zip(prompts, keys)):
            row = []
            for j in range(n):
                seed = sample_seed(params.seed, key, j)
                scripted = self._text(list(messages), key, j, seed)
                scripted, meta = scripted if isinstance(scripted, tuple) else (scripted, {})
                text, raw, toks = self._truncate(scripted, params.max_new_tokens)
                final, finish = finalize(text, raw, params)
                n_tokens = _tokens_covering(toks, len(final)) if finish != "length" else len(toks)
                row.append(
                    Sample(
                        text=final,
                        finish_reason=finish,
                        prompt_index=i,
                        sample_index=j,
                        seed=seed,
                        n_tokens=n_tokens,
                        meta=dict(meta),
                    )
                )
            results.append(row)
        return results


def _tokens_covering(toks: list[str], n_chars: int) -> int:
    """How many leading tokens it takes to cover ``n_chars`` characters (what a model would have
    generated)."""
    total = 0
    for k, tok in enumerate(toks):
        if total >= n_chars:
            return k
        total += len(tok)
    return len(toks)
