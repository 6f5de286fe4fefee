"""The sampler protocol shared by every generation backend, and the one copy of the stop logic.

Rejection sampling (arXiv 2507.09104, Sec. 3.2 and Eq. 3) draws M candidate judgments per prompt from a
generator model and keeps those whose verdict matches the gold label. Every backend (``hf``, ``vllm``,
``openai``, ``scripted``, ``simulated``) implements :class:`Sampler`: chat prompts in, ``n`` samples per
prompt out, in prompt order, each with a finish reason.

Seeds. Sample ``j`` of the prompt whose key is ``key`` has the seed ``sample_seed(params.seed, key, j)``,
a pure function of those three values. The key is the prompt's id when the caller passes ``keys=`` (the
curation pipeline passes item ids) and its index otherwise, so a run that resumes one prompt at a time
asks for the same seeds as an uninterrupted one. How each backend turns the seed into randomness is in
its docstring.

Post-processing. Whatever a backend returns goes through :func:`finalize`: the text is cut at the first
stop string, or at the end of the first complete verdict marker when ``params.stop_on_verdict`` names a
verdict format, and the finish reason says which (``"stop"``, ``"verdict"``, ``"length"``). Backends that
can stop early (``hf``) only decide *when* to stop; the cut itself is always made here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

FINISH_REASONS = ("stop", "length", "verdict")

Message = dict[str, str]
PromptKey = Hashable

# Seeds stay below 2**31 so that every backend accepts them (OpenAI-compatible servers often parse the
# seed as a signed 32-bit integer).
_SEED_MODULUS = 2**31 - 1


class GenerationError(RuntimeError):
    """A backend failed to produce samples (HTTP error after retries, engine error, malformed reply)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: ``temperature == 0`` means greedy decoding (then ``top_p``/``top_k`` are unused).

    ``stop`` strings end a sample and are not part of its text. ``stop_on_verdict`` names a verdict
    format of :mod:`cj2.verdict`; each sample then ends as soon as its verdict marker is complete (the
    marker is kept, the text after it is not), which saves the tokens a judge writes after its verdict.
    ``seed`` is the base seed from which every sample's seed is derived (:func:`sample_seed`).
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()
    seed: int = 0
    stop_on_verdict: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(
                f"SamplingParams.max_new_tokens={self.max_new_tokens!r}: expected an integer >= 1"
            )
        if not self.temperature >= 0:
            raise ValueError(f"SamplingParams.temperature={self.temperature!r}: expected a number >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"SamplingParams.top_p={self.top_p!r}: expected a number in (0, 1]")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k={self.top_k!r}: expected an integer >= 0 (0 = off)")
        for s in self.stop:
            if not isinstance(s, str) or not s:
                raise ValueError(f"SamplingParams.stop holds {s!r}: stop strings must be non-empty strings")
        if not isinstance(self.seed, int):
            raise ValueError(f"SamplingParams.seed={self.seed!r}: expected an integer")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def from_mapping(cls, cfg: Mapping[str, Any]) -> SamplingParams:
        """Build from a config mapping; an unknown key is an error naming it (a typo is never ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ValueError(f"sampling config: unknown key(s) {unknown}; expected some of {sorted(names)}")
        values = dict(cfg)
        if "stop" in values and values["stop"] is not None and not isinstance(values["stop"], str):
            values["stop"] = tuple(values["stop"])
        elif values.get("stop") is None:
            values.pop("stop", None)
        return cls(**values)


@dataclass
class Sample:
    """One generated sample.

    ``n_tokens`` counts the tokens the backend generated for it (for ``openai`` replies holding several
    choices, the reply's total divided evenly among them, as the API reports no per-choice count).
    ``seed`` is the sample's seed, :func:`sample_seed` of (params.seed, prompt key, sample_index); the
    backends that draw a prompt's ``n`` samples in one seeded request (``vllm``, ``openai``) seed it with
    sample 0's seed, so there sample ``j`` is reproduced by that request and its index.
    ``meta`` carries backend-specific facts (``simulated``: ``{"flawed": bool, ...}``).
    """

    text: str
    finish_reason: str
    prompt_index: int
    sample_index: int
    seed: int
    n_tokens: int
    meta: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Sampler(Protocol):
    """Anything that draws ``n`` samples for each of a list of chat prompts.

    ``prompts`` are chat message lists (``[{"role": ..., "content": ...}, ...]``). The result holds one
    list per prompt, in prompt order, of ``n`` samples in sample order. ``keys`` (optional, one per prompt,
    e.g. item ids) replace the prompt index in the per-sample seeds, so that a prompt gets the same seeds
    whatever else is in the call.
    """

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
    ) -> list[list[Sample]]: ...


class Lazy:
    """A value built on first use and kept: a re-run whose results are all stored loads no model. The
    one lazy builder behind :class:`LazySampler` and :class:`cj2.evaluation.backends.LazyJudge`."""

    def __init__(self, build: Callable[[], Any]):
        self._build = build
        self._value: Any = None
        self.built = False

    def get(self) -> Any:
        if not self.built:
            self._value = self._build()
            self.built = True
        return self._value


class LazySampler(Lazy):
    """A :class:`Sampler` built from its generator config (:func:`cj2.generation.build_sampler`) on the
    first :meth:`generate`; calling it returns the built sampler (a cache hit never loads a model)."""

    def __init__(self, generator: Mapping[str, Any]):
        from cj2.generation import build_sampler  # the registry lives in the package

        self.generator = dict(generator)
        super().__init__(lambda: build_sampler(self.generator))

    def __call__(self) -> Any:
        return self.get()

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
        **kwargs: Any,
    ) -> list[list[Sample]]:
        return self.get().generate(prompts, n, params, keys=keys, **kwargs)

    @property
    def needs_items(self) -> bool:
        """Whether the built sampler reads each prompt's item (e.g. the simulated teacher): builds it."""
        return bool(getattr(self.get(), "needs_items", False))


def sample_seed(base_seed: int, key: PromptKey, sample_index: int) -> int:
    """The seed of sample ``sample_index`` of the prompt ``key``: a pure function of the three values.

    A hash (BLAKE2b of their text forms) rather than arithmetic, so that nearby keys or base seeds do not
    give correlated seeds. Note that the index ``3`` and the id ``"3"`` give the same seed.
    """
    text = f"{int(base_seed)}\x1f{key}\x1f{int(sample_index)}".encode()
    digest = hashlib.blake2b(text, digest_size=8).digest()
    return int.from_bytes(digest, "big") % _SEED_MODULUS


def check_request(
    prompts: Sequence[list[Message]], n: int, keys: Sequence[PromptKey] | None
) -> list[PromptKey]:
    """Validate a ``generate`` call and return the prompt keys (the indices when ``keys`` is None).

    Errors name the prompt index and the field at fault.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: expected an integer >= 1 (samples per prompt)")
    for i, messages in enumerate(prompts):
        if not isinstance(messages, (list, tuple)) or not messages:
            raise ValueError(
                f"prompt {i}: expected a non-empty list of chat messages, got {type(messages).__name__}"
            )
        for m, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise ValueError(f"prompt {i}, message {m}: expected a mapping, got {type(message).__name__}")
            for name in ("role", "content"):
                if not isinstance(message.get(name), str):
                    raise ValueError(
                        f"prompt {i}, message {m}: field {name!r} must be a string, "
                        f"got {type(message.get(name)).__name__}"
                    )
    if keys is None:
        return list(range(len(prompts)))
    keys = list(keys)
    if len(keys) != len(prompts):
        raise ValueError(f"keys has {len(keys)} entries for {len(prompts)} prompts")
    if len(set(keys)) != len(keys):
        raise ValueError("keys must be distinct: two prompts with one key would share their seeds")
    return keys


# --------------------------------------------------------------------------------------------------
# The one copy of the stop logic
# --------------------------------------------------------------------------------------------------


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index of the earliest occurrence of any stop string in ``text``, or None."""
    best: int | None = None
    for s in stops:
        pos = text.find(s)
        if pos != -1 and (best is None or pos < best):
            best = pos
    return best


def _locate(text: str, fmt: str) -> tuple[str, int, int] | None:
    # Imported lazily: cj2.verdict is the single module that knows what a verdict looks like in text.
    from cj2.verdict import locate_verdict

    return locate_verdict(text, fmt)


def _closes(ch: str) -> bool:
    # Punctuation or a symbol: neither a word character nor whitespace.
    return not (ch.isalnum() or ch == "_" or ch.isspace())


def _candidates(text: str, final: bool) -> list[int]:
    # Every cj2 verdict marker ends in punctuation (a closing quote or brackets), so a prefix can only
    # start to hold a verdict where it ends in punctuation; the whole text is a candidate as well when
    # nothing more will be generated.
    cands = [i for i in range(1, len(text) + 1) if _closes(text[i - 1])]
    if final and text and (not cands or cands[-1] != len(text)):
        cands.append(len(text))
    return cands


def verdict_end(text: str, fmt: str, *, final: bool = True) -> int | None:
    """Where to cut ``text`` so that it ends with its first complete verdict (format ``fmt``), or None.

    The cut is the shortest prefix of ``text`` on which ``cj2.verdict.locate_verdict`` finds a verdict:
    just after the closing quote or brackets of the first valid marker, so the cut text parses to the
    same verdict. Only prefixes ending in punctuation are tried (every cj2 marker ends in one), one by
    one: a later marker still being written makes longer prefixes unparseable, so no prefix can be
    skipped. About a hundred parser calls for a 2,000-character judgment (a few milliseconds).
    """
    for b in _candidates(text, final):
        if _locate(text[:b], fmt) is not None:
            return b
    return None


def verdict_complete(text: str, fmt: str) -> bool:
    """Whether generation may stop: the text generated so far, up to its last punctuation, holds a verdict.

    One parser call; used while generating, where :func:`verdict_end` (run on the final text) then makes
    the exact cut.
    """
    for i in range(len(text), 0, -1):
        if _closes(text[i - 1]):
            return _locate(text[:i], fmt) is not None
    return False


def finalize(text: str, raw_finish: str, params: SamplingParams) -> tuple[str, str]:
    """Apply stop strings and ``stop_on_verdict`` to a backend's text; return ``(text, finish_reason)``.

    ``raw_finish`` is what the backend reports: ``"stop"`` (end of sequence) or ``"length"``
    (``max_new_tokens`` reached). A verdict marker that is complete before the first stop string wins
    (``"verdict"``, text cut at the marker's end); otherwise a stop string cuts the text before it
    (``"stop"``); otherwise the text and ``raw_finish`` pass through unchanged. The cut text ends with the
    verdict marker complete, so ``cj2.verdict.parse_verdict`` reads the same verdict from it.
    """
    if raw_finish not in ("stop", "length"):
        raise ValueError(f"raw finish reason {raw_finish!r}: expected 'stop' or 'length'")
    stop_at = find_stop(text, params.stop) if params.stop else None
    head = text if stop_at is None else text[:stop_at]
    if params.stop_on_verdict is not None:
        # The text is final (nothing more will be generated), so a marker at its very end counts.
        end = verdict_end(head, params.stop_on_verdict, final=True)
        if end is not None:
            return head[:end], "verdict"
    if stop_at is not None:
        return head, "stop"
    return text, raw_finish


# --------------------------------------------------------------------------------------------------
# Token-free truncation, for backends without a tokenizer
# --------------------------------------------------------------------------------------------------

_PIECE = re.compile(r"\s*\S+|\s+")


def pieces(text: str) -> list[str]:
    """Split ``text`` into word pieces (each word with its leading whitespace), a tokenizer-free token
    unit."""
    return _PIECE.findall(text)


TokenizeFn = Callable[[str], list[str]]
