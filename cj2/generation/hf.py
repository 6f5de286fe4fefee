"""``hf`` backend: local ``transformers`` models, decoded with continuous batching and a KV cache.

Two engines share the prompt handling, the seeds and the stop rules below:

* ``continuous`` (the default where the model is supported, :mod:`cj2.generation.continuous`): a fixed
  number of slots, each refilled with the next (prompt, sample) row as soon as its row ends, the model's
  own layers stepped over one key/value buffer allocated per call, one read of the device per
  ``sync_every`` steps; it produces the same tokens as ``legacy`` (token for token in float32);
* ``legacy``: ``model.generate`` over batches of ``batch_size`` rows, each batch decoded until its longest
  row ends; kept for models the continuous engine does not support and as the benchmark's reference.

Fast sampling for rejection sampling (arXiv 2507.09104, Sec. 3.2: M candidate judgments per prompt); what
the ``legacy`` engine does (the ``continuous`` one keeps the prompt sharing, the ordering and the stop
checks, and replaces the rest):

* every prompt is repeated ``n`` times inside the batch, so the ``n`` samples of a prompt decode
  together with other prompts' samples instead of one small ``num_return_sequences`` call per prompt;
  each prompt is run through the model once, without padding, and its KV cache copied to its ``n``
  sequences, in buffers allocated once rather than grown by concatenation at every step;
* prompts are sorted by token length (longest first, ties by position) before they are cut into
  batches, so little padding is processed; results come back in the caller's order;
* on a CPU, attention runs without copying the KV cache per query head
  (:mod:`cj2.generation.attention`), which is what limits batched decoding there;
* each sequence stops as soon as its stop string or its verdict marker is complete
  (``SamplingParams.stop_on_verdict``), checked by a :class:`~transformers.StoppingCriteria` that returns
  one flag per sequence.

Each Sample's ``meta["token_ids"]`` holds the generated token ids of the text it keeps (see
:meth:`HFSampler._sample`), for callers that score the sample under a model (on-policy training).

Seeds. Sampling does not use ``generate(do_sample=True)``, whose one global random stream makes a sample
depend on everything else in its batch. Instead logits processors apply temperature, top-k and top-p and
then draw each sequence's next token by inverse-CDF sampling with a uniform number from a random stream
of its own, seeded with the sample's seed (:func:`~cj2.generation.base.sample_seed`); ``generate`` runs
in greedy mode and picks that token. Each sequence consumes one number per step whatever its neighbours
do, so a sample is reproducible on its own: the same prompt key, sample index and base seed give the same
text in any batch composition, up to the floating-point differences that padding and batch shape cause
in the logits. In float32 those are ~1e-6 and a token flips only when its uniform falls that close to a
bin edge (rare). In bfloat16 the matmul kernels round differently for different batch shapes, so a
sample drawn in another batch composition can diverge after a few dozen tokens. For runs that must
resume bit for bit, generate in float32, or keep the batch composition (prompts, order, ``batch_size``)
fixed: a fixed composition is always reproducible on the same machine.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from cj2.generation.attention import GROUPED, generation_attention
from cj2.generation.base import (
    Message,
    PromptKey,
    Sample,
    SamplingParams,
    check_request,
    finalize,
    find_stop,
    sample_seed,
    verdict_complete,
)
from cj2.generation.continuous import Engine, unsupported_reason

log = logging.getLogger(__name__)

# ``continuous``: cj2.generation.continuous (slots refilled as rows finish); ``legacy``: one
# ``model.generate`` call per batch of rows; ``auto``: continuous where the model is supported.
ENGINES = ("auto", "continuous", "legacy")


def decoding_dtype(device: str | torch.device = "cpu") -> torch.dtype:
    """The dtype to decode in on ``device``: bfloat16 where the hardware runs it natively (a CUDA GPU with
    bf16, a CPU with AVX-512 BF16 or AMX), else float32 -- ``precision=auto``'s rule
    (:func:`cj2.runtime.resolve_precision`). Without native bf16 a CPU emulates it: a bf16 matmul measured
    200x slower than fp32 on an AVX2-only CPU."""
    from cj2.runtime import resolve_precision

    kind = torch.device(device).type
    precision = resolve_precision("auto", "cuda" if kind == "cuda" else "cpu")
    return torch.bfloat16 if precision.startswith("bf16") else torch.float32


# A verdict marker usually ends with one of these (a closing quote or bracket, or the line break after
# it); the verdict check runs on a sequence when its newest token holds one, and every few tokens anyway.
_CLOSERS = ('"', "'", "]", "}", ")", ">", "\n", "*", "”", "’")
_CLOSER_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _PerSequenceDraw(LogitsProcessor):
    """Turn greedy argmax into sampling with one random stream per sequence (inverse-CDF sampling).

    Each sequence owns a ``random.Random`` seeded with its sample seed and draws one uniform ``u`` per
    step; the token is the first whose cumulative probability exceeds ``u``. The returned scores are 0 for
    that token and -inf elsewhere, so ``generate``'s greedy argmax picks it. One uniform per sequence and
    one batched cumulative sum per step: far cheaper than vocabulary-sized noise per sequence.
    """

    def __init__(self, seeds: Sequence[int]):
        self.rngs = [random.Random(int(s)) for s in seeds]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float(), dim=-1)
        # float64 cumulative sums: over a 150k vocabulary float32 rounding would shift the bins.
        cdf = probs.double().cumsum(dim=-1)
        u = torch.tensor([rng.random() for rng in self.rngs], dtype=torch.float64, device=cdf.device)
        choice = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
        # u * total can round up to the total itself; fall back to the most likely token then.
        choice = torch.where(choice >= probs.shape[-1], probs.argmax(dim=-1), choice)
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, choice.unsqueeze(1), 0.0)
        return out


class _SequenceStopper(StoppingCriteria):
    """Stop each sequence at its first stop string or complete verdict marker (one flag per sequence).

    Only the new tokens are decoded. Stop strings are looked for in a short decoded tail; the verdict
    check decodes the whole new text but runs only when the newest token holds a closing character
    (or every ``check_every`` tokens). ``stopped_at[row]`` records how many new tokens a row had.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_width: int,
        params: SamplingParams,
        eos_ids: set[int],
        closer_ids: torch.Tensor | None,
        check_every: int,
    ):
        self.tokenizer = tokenizer
        self.width = prompt_width
        self.params = params
        self.eos_ids = eos_ids
        self.closer_ids = closer_ids
        self.check_every = max(1, int(check_every))
        # Enough tokens to hold the longest stop string whatever the tokenisation (a token is >= 1 char).
        self.tail_tokens = max((len(s) for s in params.stop), default=0) + 2
        self.stopped_at: dict[int, int] = {}
        self.ended: set[int] = set()

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        batch, length = input_ids.shape
        t = length - self.width
        done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
        newest = input_ids[:, -1].tolist()
        closer = None
        if self.params.stop_on_verdict is not None and self.closer_ids is not None:
            closer = torch.isin(input_ids[:, -1].cpu(), self.closer_ids).tolist()
        for row in range(batch):
            if row in self.stopped_at:
                done[row] = True
                continue
            if row in self.ended:
                continue
            if newest[row] in self.eos_ids:
                self.ended.add(row)  # generate's own eos criterion handles it
                continue
            new = input_ids[row, self.width :]
            hit = False
            if self.params.stop:
                tail = self.tokenizer.decode(new[-self.tail_tokens :], skip_special_tokens=True)
                hit = find_stop(tail, self.params.stop) is not None
            if (
                not hit
                and self.params.stop_on_verdict is not None
                and (t % self.check_every == 0 or (closer is not None and closer[row]))
            ):
                text = self.tokenizer.decode(new, skip_special_tokens=True)
                hit = verdict_complete(text, self.params.stop_on_verdict)
            if hit:
                self.stopped_at[row] = t
                done[row] = True
        return done


def _preallocated_layer_class() -> type:
    """A ``DynamicLayer`` that writes new keys/values into a buffer allocated once, instead of concatenating.

    ``DynamicLayer.update`` copies the whole cache at every step (``torch.cat``); with 64 sequences of a few
    hundred tokens that copying took a quarter of CPU decoding time. ``keys``/``values`` are views of the
    filled part of the buffers. With ``full_buffers`` (only under
    :func:`~cj2.generation.attention.grouped_attention`), ``update`` hands attention the whole contiguous
    buffers: a bf16 matmul on CPU copies a strided view first, which would cost as much as ``torch.cat``.
    Built lazily so that this module imports without ``transformers.cache_utils``.
    """
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def __init__(self, keys: torch.Tensor, values: torch.Tensor, capacity: int, full_buffers: bool):
            super().__init__()
            self.full_buffers = full_buffers
            self.lazy_initialization(keys, values)
            batch, heads, length, dim = keys.shape
            self._k = keys.new_zeros(batch, heads, max(capacity, length), dim)
            self._v = values.new_zeros(batch, values.shape[1], max(capacity, length), values.shape[-1])
            self._k[:, :, :length] = keys
            self._v[:, :, :length] = values
            self._length = length
            self._expose()

        def _expose(self) -> None:
            self.keys = self._k[:, :, : self._length]
            self.values = self._v[:, :, : self._length]

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            new = key_states.shape[-2]
            if self._length + new > self._k.shape[-2]:  # more than planned: grow (rare; doubles)
                grow = max(self._k.shape[-2], new)
                self._k = torch.cat(
                    [self._k, self._k.new_zeros(*self._k.shape[:2], grow, self._k.shape[-1])], 2
                )
                self._v = torch.cat(
                    [self._v, self._v.new_zeros(*self._v.shape[:2], grow, self._v.shape[-1])], 2
                )
            self._k[:, :, self._length : self._length + new] = key_states
            self._v[:, :, self._length : self._length + new] = value_states
            self._length += new
            self._expose()
            if self.full_buffers:
                # The whole buffers, unfilled slots (zeros) included: grouped_attention masks every position
                # past the attention mask's length, and contiguous buffers spare bf16 matmuls a copy.
                return self._k, self._v
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self._length

        def crop(self, tokens_to_remove: int) -> None:
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative number of tokens to remove")
            self._length = max(self._length + tokens_to_remove, 0) if tokens_to_remove else self._length
            self._expose()

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._expose()

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._k = self._k.repeat_interleave(repeats, dim=0)
            self._v = self._v.repeat_interleave(repeats, dim=0)
            self._expose()

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self.batch_select_indices(beam_idx)

    return PreallocatedLayer


class HFSampler:
    """Sampler over a local ``transformers`` causal LM (see the module docstring for batching and seeds).

    ``batch_size`` is the number of sequences (prompts x samples) per ``generate`` call. ``device``
    defaults to the model's device. The tokenizer must have a chat template. ``verdict_check_every``
    bounds how many tokens a sequence may run past its verdict marker when no closing character shows up.
    ``share_prefill`` runs each prompt through the model once per batch, not once per sample, without
    padding, into a cache allocated once (``False`` leaves prefill and cache to ``generate``).
    ``attention``: ``"auto"`` uses :func:`cj2.generation.attention.grouped_attention` on a CPU for the
    model types it supports (several times faster decoding there) and the model's own kernel otherwise;
    ``"grouped"`` forces it, ``"model"`` keeps the model's own (for the ``legacy`` engine and the prefill;
    the ``continuous`` engine's decode step always computes grouped attention's function).

    ``engine``: ``"auto"`` (continuous batching where :func:`cj2.generation.continuous.unsupported_reason`
    allows it and ``share_prefill`` is on, else ``legacy``), ``"continuous"`` (an error where unsupported)
    or ``"legacy"``. Continuous-engine options: ``fuse`` projects q/k/v and gate/up with one matrix product
    each (weights concatenated once per call), ``sync_every`` is how many steps run between two reads of the
    new tokens (default 1 on a CPU, 8 on CUDA), ``refill=False`` admits rows only when every slot is free
    (static batches, for measurements). The model may be one being trained: each call switches it to eval
    mode under ``torch.inference_mode`` and back, reads its weights as they are at the call, and keeps no
    state between calls.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        *,
        verdict_check_every: int = 8,
        share_prefill: bool = True,
        attention: str = "auto",
        engine: str = "auto",
        fuse: bool = False,
        sync_every: int | None = None,
        refill: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}: expected >= 1")
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"tokenizer {getattr(tokenizer, 'name_or_path', '?')!r} has no chat template; "
                "the hf sampler formats chat prompts with it"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.verdict_check_every = verdict_check_every
        self.share_prefill = share_prefill
        if attention not in ("auto", "grouped", "model"):
            raise ValueError(f"attention={attention!r}: expected 'auto', 'grouped' or 'model'")
        self.attention = attention
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r}: expected one of {', '.join(ENGINES)}")
        self.engine = engine
        self.fuse = bool(fuse)
        if sync_every is not None and int(sync_every) < 1:
            raise ValueError(f"sync_every={sync_every!r}: expected an integer >= 1")
        # On a CPU reading the device costs nothing and every extra step of a finished row costs a full
        # row of compute: look after every step. On a GPU a read waits for the queue to drain.
        self.sync_every = (
            int(sync_every) if sync_every is not None else (8 if self.device.type == "cuda" else 1)
        )
        self.refill = bool(refill)
        self.last_stats: dict[str, Any] = {}
        self._closer_ids: torch.Tensor | None = None
        if self.tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; set one (left padding needs it)")

    def __repr__(self) -> str:
        name = getattr(getattr(self.model, "config", None), "name_or_path", "") or type(self.model).__name__
        return f"HFSampler(model={name!r}, batch_size={self.batch_size}, device={str(self.device)!r})"

    # ---------------------------------------------------------------------------------------------
    def encode(self, messages: list[Message]) -> list[int]:
        """Token ids of a chat prompt with the generation prompt appended (no extra special tokens)."""
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.tokenizer):
            eos = getattr(source, "eos_token_id", None)
            if eos is None:
                continue
            ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
        if not ids:
            raise ValueError("neither the model's generation config nor the tokenizer names an eos token")
        return {int(i) for i in ids}

    def _closers(self) -> torch.Tensor:
        # Token ids whose text holds a closing character, computed once per tokenizer (about a second
        # for a 50k vocabulary).
        if self._closer_ids is None:
            cached = _CLOSER_CACHE.get(self.tokenizer)
            if cached is None:
                texts = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
                ids = [i for i, t in enumerate(texts) if any(c in t for c in _CLOSERS)]
                cached = torch.tensor(ids, dtype=torch.long)
                _CLOSER_CACHE[self.tokenizer] = cached
            self._closer_ids = cached
        return self._closer_ids

    @contextlib.contextmanager
    def _eval_mode(self) -> Iterator[None]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.model.train(was_training)

    # ---------------------------------------------------------------------------------------------
    def engine_for(self, model_capacity: int | None = None) -> str:
        """The engine a call uses: ``continuous`` where :mod:`cj2.generation.continuous` supports the model
        (and ``share_prefill`` is on), else ``legacy``."""
        if self.engine == "legacy":
            return "legacy"
        reason = unsupported_reason(self.model, model_capacity)
        if self.engine == "continuous" and reason is not None:
            raise ValueError(f"engine='continuous' cannot run this model: {reason}")
        if self.engine == "auto" and (reason is not None or not self.share_prefill):
            return "legacy"
        return "continuous"

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
        on_batch: Callable[[int], Any] | None = None,
    ) -> list[list[Sample]]:
        """``n`` samples of each prompt; ``on_batch(rows)`` is called as rows finish (a progress bar's
        ``update``): after each batch of ``batch_size`` rows (``legacy``), or each step that finished some
        (``continuous``). :attr:`last_stats` then holds the call's engine, times and counts."""
        keys = check_request(prompts, n, keys)
        encoded = [self.encode(list(p)) for p in prompts]
        # Longest first (an out-of-memory batch fails at once), ties by position: a deterministic order.
        order = sorted(range(len(prompts)), key=lambda i: (-len(encoded[i]), i))
        rows = [(i, j) for i in order for j in range(n)]
        results: list[list[Sample | None]] = [[None] * n for _ in prompts]
        eos_ids = self._eos_ids()
        if not rows:
            return []
        engine = self.engine_for(max(len(e) for e in encoded) + params.max_new_tokens)
        start = time.perf_counter()
        with self._eval_mode(), generation_attention(self.model, self.attention, self.device):
            if engine == "continuous":
                seeds = [sample_seed(params.seed, keys[i], j) for i, j in rows]

                def finish(r: int, tokens: list[int], n_tokens: int, n_text: int, raw: str) -> None:
                    i, j = rows[r]
                    results[i][j] = self._sample(tokens, n_tokens, n_text, raw, params, i, j, seeds[r])

                runner = Engine(self, fuse=self.fuse, sync_every=self.sync_every, refill=self.refill)
                runner.run(rows, encoded, seeds, params, eos_ids, finish, on_batch)
                stats: dict[str, Any] = dict(runner.stats)
            else:
                for begin in range(0, len(rows), self.batch_size):
                    batch = rows[begin : begin + self.batch_size]
                    samples = self._generate_batch(batch, encoded, keys, params, eos_ids)
                    for (i, j), sample in zip(batch, samples):
                        results[i][j] = sample
                    if on_batch is not None:
                        on_batch(len(batch))
                stats = {}
        stats.update(engine=engine, seconds=time.perf_counter() - start)
        stats["new_tokens"] = sum(s.n_tokens for r in results for s in r if s is not None)
        self.last_stats = stats
        return [list(r) for r in results]  # type: ignore[arg-type]

    def _warpers(self, params: SamplingParams) -> Callable[[torch.Tensor], torch.Tensor]:
        """Temperature, top-k and top-p on a batch of logits, in that order (transformers' warpers)."""
        warpers: list[LogitsProcessor] = []
        if params.greedy:
            return lambda scores: scores
        if params.temperature != 1.0:
            warpers.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            warpers.append(TopKLogitsWarper(top_k=params.top_k))
        if params.top_p < 1.0:
            warpers.append(TopPLogitsWarper(top_p=params.top_p))

        def apply(scores: torch.Tensor) -> torch.Tensor:
            for w in warpers:
                scores = w(None, scores)  # type: ignore[arg-type]  # these warpers ignore input_ids
            return scores

        return apply

    def _sample(
        self,
        tokens: list[int],
        n_tokens: int,
        n_text: int,
        raw: str,
        params: SamplingParams,
        i: int,
        j: int,
        seed: int,
    ) -> Sample:
        """A finished row as a Sample; ``meta["token_ids"]`` are the generated ids of the kept text.

        Those are the tokens through the one where :func:`finalize` cut the text (that token included when
        the cut falls inside it); when nothing was cut, all ``n_tokens`` (an end-of-sequence token
        included: it was generated, though it has no text).
        """
        full = self.tokenizer.decode(tokens[:n_text], skip_special_tokens=True)
        text, finish = finalize(full, raw, params)
        kept = list(tokens[:n_tokens])
        if text != full:
            kept = tokens[: self._tokens_covering(tokens[:n_text], len(text))]
        return Sample(
            text=text,
            finish_reason=finish,
            prompt_index=i,
            sample_index=j,
            seed=seed,
            n_tokens=n_tokens,
            meta={"token_ids": kept},
        )

    def _tokens_covering(self, tokens: list[int], chars: int) -> int:
        """The fewest leading ``tokens`` whose text holds at least ``chars`` characters (binary search, then
        a step back where a partial multi-byte character made the text shorter)."""

        def length(k: int) -> int:
            return len(self.tokenizer.decode(tokens[:k], skip_special_tokens=True))

        lo, hi = 0, len(tokens)
        while lo < hi:
            mid = (lo + hi) // 2
            if length(mid) >= chars:
                hi = mid
            else:
                lo = mid + 1
        while lo > 0 and length(lo - 1) >= chars:
            lo -= 1
        return lo

    def _generate_batch(
        self,
        batch: list[tuple[int, int]],
        encoded: list[list[int]],
        keys: list[PromptKey],
        params: SamplingParams,
        eos_ids: set[int],
    ) -> list[Sample]:
        pad = int(self.tokenizer.pad_token_id)
        width = max(len(encoded[i]) for i, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (i, _) in enumerate(batch):
            ids = encoded[i]
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)  # left padding
            attention[row, width - len(ids) :] = 1
        seeds = [sample_seed(params.seed, keys[i], j) for i, j in batch]

        processors = LogitsProcessorList()
        if not params.greedy:
            if params.temperature != 1.0:
                processors.append(TemperatureLogitsWarper(params.temperature))
            if params.top_k > 0:
                processors.append(TopKLogitsWarper(top_k=params.top_k))
            if params.top_p < 1.0:
                processors.append(TopPLogitsWarper(top_p=params.top_p))
            processors.append(_PerSequenceDraw(seeds))
        stopper = None
        criteria = StoppingCriteriaList()
        if params.stop or params.stop_on_verdict is not None:
            closers = self._closers() if params.stop_on_verdict is not None else None
            stopper = _SequenceStopper(
                self.tokenizer, width, params, eos_ids, closers, self.verdict_check_every
            )
            criteria.append(stopper)
        config = GenerationConfig(
            max_new_tokens=params.max_new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            eos_token_id=sorted(eos_ids),
            pad_token_id=pad,
        )
        input_ids, attention = input_ids.to(self.device), attention.to(self.device)
        extra: dict[str, Any] = {}
        if self.share_prefill:
            extra = self._shared_prefill(batch, input_ids, attention, width - 1 + params.max_new_tokens)
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            generation_config=config,
            logits_processor=processors,
            stopping_criteria=criteria,
            # transformers would step every rank in lockstep for an FSDP-managed model; cj2 generates from
            # a sharded model only with its weights gathered (cj2.distributed.gathered): no collective
            synced_gpus=False,
            **extra,
        )
        new = out[:, width:].cpu()
        samples = []
        for row, (i, j) in enumerate(batch):
            tokens = new[row].tolist()
            if stopper is not None and row in stopper.stopped_at:
                n_tokens, n_text, raw = stopper.stopped_at[row], stopper.stopped_at[row], "stop"
            else:
                eos_at = next((k for k, tok in enumerate(tokens) if tok in eos_ids), None)
                if eos_at is not None:
                    # The eos token counts as generated but is not part of the text.
                    n_tokens, n_text, raw = eos_at + 1, eos_at, "stop"
                else:
                    n_tokens, n_text, raw = len(tokens), len(tokens), "length"
                    if n_tokens < params.max_new_tokens:
                        raise AssertionError(f"row {row} ended after {n_tokens} tokens without eos or stop")
            samples.append(self._sample(tokens, n_tokens, n_text, raw, params, i, j, seeds[row]))
        return samples

    def _shared_prefill(
        self, batch: list[tuple[int, int]], input_ids: torch.Tensor, attention: torch.Tensor, capacity: int
    ) -> dict[str, Any]:
        """Prefill each distinct prompt of the batch once, without padding, into a preallocated cache whose
        rows serve the prompt's ``n`` sequences.

        ``generate`` would run every sequence's prompt through the model, padded to the batch's longest,
        and grow its cache by concatenation at every step. Here each distinct prompt (all but its last
        token, which ``generate`` feeds to get the first logits) goes through alone; the caches are
        stacked, left-padded with zeros that the attention mask hides, one row per sequence, in buffers
        of ``capacity`` positions that later steps fill in place. Models whose cache layers are not plain
        dynamic layers (sliding windows, linear attention) fall back to one padded prefill of the distinct
        prompts and ``generate``'s own cache growth. Returns ``generate``'s cache argument.
        """
        try:
            from transformers.cache_utils import DynamicCache, DynamicLayer
        except ImportError:  # a transformers without per-layer caches: leave the prefill to generate
            return {}

        firsts: dict[int, int] = {}
        for row, (i, _) in enumerate(batch):
            firsts.setdefault(i, row)
        width = input_ids.shape[1]
        if width < 2:
            return {}
        index = {i: u for u, i in enumerate(firsts)}
        select = torch.tensor([index[i] for i, _ in batch], device=input_ids.device)
        caches = []
        for row in firsts.values():
            length = int(attention[row].sum())
            ids = input_ids[row : row + 1, width - length : width - 1]
            out = self.model(input_ids=ids, use_cache=True, **self._no_logits)
            cache = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
            if cache is None or not all(
                type(layer) is DynamicLayer for layer in getattr(cache, "layers", [None])
            ):
                return self._padded_prefill(list(firsts.values()), select, input_ids, attention)
            caches.append(cache)
        layer_class = _preallocated_layer_class()
        full = getattr(self.model.config, "_attn_implementation", None) == GROUPED
        stacked = DynamicCache()
        layers = []
        for layer in range(len(caches[0].layers)):
            keys, values = [], []
            for cache in caches:
                k, v = cache.layers[layer].keys, cache.layers[layer].values
                pad = width - 1 - k.shape[-2]
                keys.append(torch.nn.functional.pad(k, (0, 0, pad, 0)))  # zeros on the left of the sequence
                values.append(torch.nn.functional.pad(v, (0, 0, pad, 0)))
            layers.append(layer_class(torch.cat(keys)[select], torch.cat(values)[select], capacity, full))
        stacked.layers = layers
        return {self._cache_kwarg: stacked}

    def _padded_prefill(
        self, unique_rows: list[int], select: torch.Tensor, input_ids: torch.Tensor, attention: torch.Tensor
    ) -> dict[str, Any]:
        rows = torch.tensor(unique_rows, device=input_ids.device)
        ids, mask = input_ids[rows, :-1], attention[rows, :-1]
        # Left padding: positions count real tokens only, as generate computes them.
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **self._no_logits
        )
        cache = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
        if cache is None or not hasattr(cache, "batch_select_indices"):
            return {}
        cache.batch_select_indices(select)
        return {self._cache_kwarg: cache}

    @property
    def _no_logits(self) -> dict[str, Any]:
        # The prefill only fills the cache; projecting every prompt position onto the vocabulary would
        # cost about a fifth of a small model's prefill. Models without the argument compute them all.
        params = inspect.signature(self.model.forward).parameters
        return {"logits_to_keep": 1} if "logits_to_keep" in params else {}

    @property
    def _cache_kwarg(self) -> str:
        # transformers 5 names the cache argument `cache`; 4.x names it `past_key_values`.
        params = inspect.signature(self.model.forward).parameters
        return "cache" if "cache" in params else "past_key_values"

    def count_prompt_tokens(self, messages: list[Message]) -> int:
        """Prompt length in tokens (with the chat template), e.g. for an API server's usage report."""
        return len(self.encode(messages))
