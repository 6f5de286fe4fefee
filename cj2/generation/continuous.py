"""Continuous-batching decoder behind :class:`cj2.generation.hf.HFSampler` (``engine="continuous"``).

``generate`` (the ``legacy`` engine) decodes a batch of rows until its longest member is done: a judgment
that stops at its verdict after 30 tokens keeps its slot busy, decoding padding, while a neighbour writes
300. This engine keeps a fixed number of *slots* (``batch_size``) and refills a slot with the next pending
(prompt, sample) row as soon as its row finishes, so every decoded position belongs to a live row until
the queue runs dry; then the live rows are moved into a smaller power-of-two slot count, so a tail of a few
long rows does not pay for 64.

What one decode step does, and what it avoids:

* every layer runs the model's own modules (norms, projections, MLP, rotary embedding and
  ``apply_rotary_pos_emb`` of its modeling file), so trained or LoRA-wrapped weights are used as they are
  at call time; attention is :func:`cj2.generation.attention.grouped_attention`'s computation (query heads
  folded per key/value head, two batched matrix products, the same additive mask) against a key/value
  buffer allocated once per call (zeros, ``slots x heads x capacity x dim`` per layer), each slot at its
  own position, read only up to the longest live row (rounded up to 16 positions);
* no ``generate`` machinery per step (logits processors list, stopping criteria objects, cache objects,
  mask builders): sampling is one softmax, one float64 cumulative sum and one ``searchsorted`` for the
  whole batch, with the per-sequence uniforms drawn when a row is admitted (the same ``random.Random``
  stream per sample seed as the legacy engine, so samples are the same);
* the host looks at the new tokens once per ``sync_every`` steps (one copy of a ``slots x sync_every``
  token block); end-of-sequence and closing-character tokens are found with vectorised look-ups, and text
  is decoded only for rows whose stop or verdict check is due (the same checks, at the same tokens, as
  the legacy engine's stopping criterion);
* the prompt is run through the model once per distinct prompt (all but its last token, as ``generate``
  does with a cache), and its keys/values copied into the slots of its ``n`` samples.

The engine supports decoder-only models whose attention is plain softmax attention over the whole context
(:data:`cj2.generation.attention.GROUPED_MODEL_TYPES`, without sliding windows);
:func:`unsupported_reason` says why another model falls back to ``generate``.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from cj2.generation.attention import GROUPED_MODEL_TYPES


def _base(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def unsupported_reason(model: Any, capacity: int | None = None) -> str | None:
    """Why :class:`Decoder` cannot run ``model`` (None when it can)."""
    base = _base(model)
    config = getattr(base, "config", None)
    kind = getattr(config, "model_type", None)
    if kind not in GROUPED_MODEL_TYPES:
        return f"model type {kind!r} is not one of {sorted(GROUPED_MODEL_TYPES)}"
    layer_types = getattr(config, "layer_types", None) or ()
    if any(t != "full_attention" for t in layer_types):
        return "the model has sliding-window layers"
    window = getattr(config, "sliding_window", None)
    if kind == "mistral" and window is not None and (capacity is None or capacity > window):
        return f"mistral sliding window {window} shorter than the {capacity} positions needed"
    inner = getattr(base, "model", None)
    for name in ("embed_tokens", "layers", "norm", "rotary_emb"):
        if not hasattr(inner, name):
            return f"the model has no model.{name}"
    if not hasattr(base, "lm_head"):
        return "the model has no lm_head"
    for layer in inner.layers:
        attn = getattr(layer, "self_attn", None)
        if attn is None or not all(hasattr(attn, p) for p in ("q_proj", "k_proj", "v_proj", "o_proj")):
            return "a layer's attention has no q/k/v/o projections"
        if not all(hasattr(layer, p) for p in ("mlp", "input_layernorm", "post_attention_layernorm")):
            return "a layer is not a pre-norm attention + MLP block"
    if getattr(config, "final_logit_softcapping", None) or getattr(config, "attn_logit_softcapping", None):
        return "the model soft-caps its logits"
    return None


class Decoder:
    """One decode step of a Llama-family model over a slot-major key/value buffer.

    ``fuse``: project q/k/v with one matrix product and gate/up with another, from weights concatenated
    when the decoder is built (so once per ``generate`` call: an optimizer step between calls is seen).
    Only for plain ``nn.Linear`` projections (not LoRA-wrapped ones).
    """

    def __init__(self, model: Any, *, fuse: bool = False):
        base = _base(model)
        self.config = base.config
        inner = base.model
        self.embed = inner.embed_tokens
        self.layers = list(inner.layers[: self.config.num_hidden_layers])
        self.norm = inner.norm
        self.rotary = inner.rotary_emb
        self.lm_head = base.lm_head
        attn = self.layers[0].self_attn
        self.rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
        self.head_dim = int(attn.head_dim)
        self.scaling = float(attn.scaling)
        self.heads = int(self.config.num_attention_heads)
        self.kv_heads = int(self.config.num_key_value_heads)
        self.groups = self.heads // self.kv_heads
        weight = self.lm_head.weight
        self.dtype, self.device = weight.dtype, weight.device
        self.fused: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None] = []
        for layer in self.layers:
            self.fused.append(self._fuse(layer) if fuse else None)

    @staticmethod
    def _fuse(layer: Any) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor] | None:
        attn, mlp = layer.self_attn, layer.mlp
        linears = [attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj]
        if not all(type(m) is torch.nn.Linear for m in linears) or mlp.gate_proj.bias is not None:
            return None
        qkv = torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight])
        biases = [attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]
        bias = torch.cat(biases) if all(b is not None for b in biases) else None
        if bias is None and any(b is not None for b in biases):
            return None
        gate_up = torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight])
        return qkv, bias, gate_up

    def new_cache(self, slots: int, capacity: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        # Zeros, not empty: masked positions are multiplied by zero probabilities, and 0 * NaN is NaN.
        shape = (slots, self.kv_heads, capacity, self.head_dim)
        return [
            (
                torch.zeros(shape, dtype=self.dtype, device=self.device),
                torch.zeros(shape, dtype=self.dtype, device=self.device),
            )
            for _ in self.layers
        ]

    def step(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        cache: list[tuple[torch.Tensor, torch.Tensor]],
        slots: int,
        length: int,
    ) -> torch.Tensor:
        """Logits (float32, ``slots x vocab``) of the next token of each slot.

        ``tokens``/``positions``: ``(slots,)``, the input token and its position (= its index in the
        slot's buffer); ``mask``: additive, ``(slots, 1, 1, length)``; keys/values at ``positions`` are
        written first, then attention reads buffer positions ``[0, length)``.
        """
        b, kvh, g, d = slots, self.kv_heads, self.groups, self.head_dim
        rows = torch.arange(b, device=tokens.device)
        h = self.embed(tokens[:b, None])  # (b, 1, hidden)
        pos = positions[:b, None]
        cos, sin = self.rotary(h, pos)
        for layer, fused, (kbuf, vbuf) in zip(self.layers, self.fused, cache):
            attn, mlp = layer.self_attn, layer.mlp
            x = layer.input_layernorm(h)
            if fused is not None:
                qkv = torch.nn.functional.linear(x, fused[0], fused[1])
                q, k, v = qkv.split([self.heads * d, kvh * d, kvh * d], dim=-1)
            else:
                q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
            q, k, v = q.view(b, 1, -1, d), k.view(b, 1, -1, d), v.view(b, 1, -1, d)
            if hasattr(attn, "q_norm"):  # Qwen3 normalises each head's query and key
                q, k = attn.q_norm(q), attn.k_norm(k)
            q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
            q, k = self.rope(q, k, cos, sin)
            # .to: under autocast the projections come out in its dtype, the buffers are the model's
            kbuf[rows, :, pos[:, 0]] = k[:, :, 0].to(kbuf.dtype)
            vbuf[rows, :, pos[:, 0]] = v[:, :, 0].to(vbuf.dtype)
            keys, values = kbuf[:b, :, :length], vbuf[:b, :, :length]
            # grouped_attention's arithmetic, in its order: (b, kvh, g, d) queries against the buffers as
            # they are, no repeat of keys/values per query head.
            scores = torch.matmul(q.reshape(b, kvh, g, d), keys.transpose(2, 3)) * self.scaling
            scores = scores + mask
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(values.dtype)
            out = torch.matmul(probs, values).view(b, self.heads, 1, d).transpose(1, 2)
            h = h + attn.o_proj(out.reshape(b, 1, self.heads * d))
            x = layer.post_attention_layernorm(h)
            if fused is not None:
                gate, up = torch.nn.functional.linear(x, fused[2]).chunk(2, dim=-1)
                x = mlp.down_proj(mlp.act_fn(gate) * up)
            else:
                x = mlp(x)
            h = h + x
        return self.lm_head(self.norm(h))[:, 0].float()


class Engine:
    """Runs the rows of one ``HFSampler.generate`` call through :class:`Decoder` with continuous batching.

    ``sampler`` provides the model, tokenizer, ``batch_size``, the verdict-check cadence and the closing
    token table; :meth:`run` hands each finished row to ``finish(row, tokens, n_tokens, n_text, raw)``.
    ``refill=False`` (for measurements) admits rows only when every slot is free, as static batches would.
    After :meth:`run`, :attr:`stats` holds the prefill and decode times and counts.
    """

    def __init__(
        self,
        sampler: Any,
        *,
        fuse: bool = False,
        sync_every: int = 1,
        refill: bool = True,
        bucket_slots: bool = False,
    ):
        self.sampler = sampler
        self.refill = refill
        self.bucket_slots = bucket_slots
        self.fuse = fuse
        self.sync_every = max(1, int(sync_every))
        self.stats: dict[str, float] = {}

    def run(
        self,
        rows: list[tuple[int, int]],
        encoded: list[list[int]],
        seeds: list[int],
        params: Any,
        eos_ids: set[int],
        finish: Callable[[int, list[int], int, int, str], None],
        on_batch: Callable[[int], Any] | None,
    ) -> None:
        sampler, tokenizer = self.sampler, self.sampler.tokenizer
        model = sampler.model
        device = sampler.device
        chunk = self.sync_every
        max_new = params.max_new_tokens
        capacity = max(len(encoded[i]) for i, _ in rows) + max_new + chunk
        capacity = -(-capacity // 16) * 16
        slots = min(sampler.batch_size, len(rows))
        decoder = Decoder(model, fuse=self.fuse)
        cache = decoder.new_cache(slots, capacity)
        stats = {"prefill_s": 0.0, "prefill_tokens": 0, "decode_s": 0.0, "steps": 0, "slot_steps": 0}
        stats["live_slot_steps"] = 0

        # Device state of the slots.
        tok = torch.zeros(slots, dtype=torch.long, device=device)
        pos = torch.zeros(slots, dtype=torch.long, device=device)
        count = torch.zeros(slots, dtype=torch.long, device=device)  # new tokens so far
        live = torch.zeros(slots, dtype=torch.long, device=device)
        uniforms = None
        if not params.greedy:
            uniforms = torch.zeros(slots, max_new + chunk, dtype=torch.float64, device=device)
        block = torch.zeros(slots, chunk, dtype=torch.long, device=device)
        positions = torch.arange(capacity, device=device)
        neg = torch.finfo(decoder.dtype).min
        warpers = sampler._warpers(params)

        # Host state: which row each slot holds, and its position as ``offset[slot] + step`` (known without
        # reading the device).
        slot_row: list[int | None] = [None] * slots  # index into rows
        offset = [0] * slots
        generated: list[list[int]] = [[] for _ in range(slots)]
        checker = _Checker(tokenizer, params, eos_ids, sampler, max_new)

        prefix: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
        remaining: dict[int, int] = {}  # prompt -> samples not yet admitted
        for i, _ in rows:
            remaining[i] = remaining.get(i, 0) + 1
        pending = list(range(len(rows)))[::-1]  # pop() takes the rows in order
        active = slots  # slots the step runs (a power of two once the queue is empty)
        step = 0

        def prefill(i: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
            if i in prefix:
                return prefix[i]
            ids = encoded[i]
            keys: list[torch.Tensor] = []
            values: list[torch.Tensor] = []
            if len(ids) > 1:
                start = time.perf_counter()
                out = model(
                    input_ids=torch.tensor([ids[:-1]], device=device), use_cache=True, **sampler._no_logits
                )
                past = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
                for layer in past.layers:
                    keys.append(layer.keys[0])
                    values.append(layer.values[0])
                stats["prefill_s"] += time.perf_counter() - start
                stats["prefill_tokens"] += len(ids) - 1
            prefix[i] = (keys, values)
            return keys, values

        def admit(slot: int, r: int) -> None:
            i, _ = rows[r]
            keys, values = prefill(i)
            remaining[i] -= 1
            if remaining[i] == 0:
                del prefix[i]  # its last sample: the prompt's keys/values now live in the slots only
            n = len(encoded[i]) - 1
            for (kbuf, vbuf), k, v in zip(cache, keys, values):
                kbuf[slot, :, :n] = k
                vbuf[slot, :, :n] = v
            tok[slot] = encoded[i][-1]
            pos[slot] = n
            count[slot] = 0
            live[slot] = 1
            if uniforms is not None:
                # The legacy engine's stream: one uniform per new token from random.Random(sample seed).
                rng = random.Random(int(seeds[r]))
                draws = [rng.random() for _ in range(max_new)]
                uniforms[slot, :max_new] = torch.tensor(draws, dtype=torch.float64)
            slot_row[slot] = r
            offset[slot] = n - step
            generated[slot] = []

        def release(slot: int) -> None:
            slot_row[slot] = None
            live[slot] = 0
            pos[slot] = 0

        for slot in range(slots):
            if pending:
                admit(slot, pending.pop())

        while any(r is not None for r in slot_row[:active]):
            start = time.perf_counter()
            in_use = [s for s in range(active) if slot_row[s] is not None]
            furthest = max(offset[s] for s in in_use)
            for c in range(chunk):
                # Attend up to the furthest live row (rounded up: fewer distinct shapes).
                length = min(-(-(furthest + step + 1) // 16) * 16, capacity)
                mask = torch.where(positions[:length] <= pos[:active, None], 0.0, neg)
                logits = decoder.step(
                    tok, pos, mask.to(decoder.dtype)[:, None, None, :], cache, active, length
                )
                if uniforms is None:
                    nxt = logits.argmax(dim=-1)
                else:
                    u = uniforms[:active].gather(1, count[:active, None]).squeeze(1)
                    nxt = _draw(warpers(logits), u)
                block[:active, c] = nxt
                tok[:active] = nxt
                pos[:active] += live[:active]
                count[:active] += live[:active]
                step += 1
            stats["steps"] += chunk
            stats["slot_steps"] += chunk * active
            stats["live_slot_steps"] += chunk * len(in_use)
            new = block[:active].tolist()  # the one read of the device per chunk
            stats["decode_s"] += time.perf_counter() - start

            done = 0
            for s in in_use:
                generated[s].extend(new[s])
                t = len(generated[s])
                end = checker.scan(generated[s], t - chunk, t)
                if end is None:
                    continue
                n_tokens, n_text, raw = end
                finish(slot_row[s], generated[s][:n_tokens], n_tokens, n_text, raw)
                done += 1
                release(s)
                if pending and self.refill:
                    admit(s, pending.pop())
            if done and on_batch is not None:
                on_batch(done)
            if not self.refill:  # static batches (for measurements): the next batch once all slots are free
                if pending and all(r is None for r in slot_row):
                    for slot in range(slots):
                        if pending:
                            admit(slot, pending.pop())
            elif not pending:
                in_use = [s for s in range(active) if slot_row[s] is not None]
                k = len(in_use)
                # Without pending rows a finished row's slot would decode padding: the live rows move into
                # the slots [0, k) -- each live row above k into a free slot below it, so only as many
                # cache rows are copied as rows finished -- and the step runs k slots (rounded up to a power
                # of two with bucket_slots, for a few static shapes).
                target = 1 << max(k - 1, 0).bit_length() if self.bucket_slots else k
                if k and target < active:
                    holes = [s for s in range(k) if slot_row[s] is None]
                    movers = [s for s in in_use if s >= k]
                    if movers:
                        src = torch.tensor(movers, device=device)
                        dst = torch.tensor(holes, device=device)
                        for kbuf, vbuf in cache:
                            kbuf[dst] = kbuf[src]
                            vbuf[dst] = vbuf[src]
                        for tensor in (tok, pos, count, live, uniforms):
                            if tensor is not None:
                                tensor[dst] = tensor[src]
                        for host in (slot_row, offset, generated):
                            for h, m in zip(holes, movers):
                                host[h] = host[m]
                    for s in range(k, active):
                        release(s)
                    active = target
        self.stats = stats


def _draw(scores: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling, one uniform per row: the legacy engine's ``_PerSequenceDraw`` arithmetic."""
    probs = torch.softmax(scores.float(), dim=-1)
    cdf = probs.double().cumsum(dim=-1)
    choice = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
    return torch.where(choice >= probs.shape[-1], probs.argmax(dim=-1), choice)


class _Checker:
    """Decides where a row ends, with the legacy stopping criterion's rules at the same tokens.

    After new token ``t`` (1-based): an end-of-sequence token ends the row (``t`` tokens, text of ``t-1``);
    otherwise a stop string in the decoded tail, or (when ``t`` is a multiple of the check cadence or the
    token holds a closing character) a complete verdict, stops it at ``t``; ``max_new_tokens`` ends it.
    """

    def __init__(self, tokenizer: Any, params: Any, eos_ids: set[int], sampler: Any, max_new: int):
        from cj2.generation.base import find_stop, verdict_complete

        self.tokenizer = tokenizer
        self.params = params
        self.eos_ids = eos_ids
        self.max_new = max_new
        self.every = max(1, int(sampler.verdict_check_every))
        self.tail = max((len(s) for s in params.stop), default=0) + 2
        self.find_stop, self.verdict_complete = find_stop, verdict_complete
        self.closers: set[int] = set()
        if params.stop_on_verdict is not None:
            self.closers = set(sampler._closers().tolist())

    def scan(self, tokens: Sequence[int], before: int, after: int) -> tuple[int, int, str] | None:
        params = self.params
        for t in range(before + 1, min(after, self.max_new) + 1):
            token = tokens[t - 1]
            if token in self.eos_ids:
                return t, t - 1, "stop"
            hit = False
            if params.stop:
                tail = self.tokenizer.decode(tokens[max(t - self.tail, 0) : t], skip_special_tokens=True)
                hit = self.find_stop(tail, params.stop) is not None
            if (
                not hit
                and params.stop_on_verdict is not None
                and (t % self.every == 0 or token in self.closers)
            ):
                text = self.tokenizer.decode(tokens[:t], skip_special_tokens=True)
                hit = self.verdict_complete(text, params.stop_on_verdict)
            if hit:
                return t, t, "stop"
        if after >= self.max_new:
            return self.max_new, self.max_new, "length"
        return None
