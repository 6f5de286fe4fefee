"""``vllm`` backend: offline batched generation with vLLM's ``LLM`` engine. Unverified on GPU.

vLLM is an optional dependency (the ``[vllm]`` extra; it pins its own torch and needs CUDA), imported only
when this backend is built. Each prompt is one request with ``SamplingParams(n=n, seed=...)``: vLLM
shares the prompt's KV cache among the ``n`` samples and schedules all requests together (continuous
batching), which is what arXiv 2507.09104's 8 candidates per prompt from a 72B generator need
(Sec. 3.2, 5.1). The request seed is the seed of sample 0 (:func:`~cj2.generation.base.sample_seed`);
vLLM derives the ``n`` samples from it, so a prompt's samples are reproducible whatever else is in the
call. ``stop`` strings are passed to vLLM; ``stop_on_verdict`` cuts the text afterwards (no tokens saved).

This backend is tested against a fake engine that implements the calls used here (``LLM.chat`` with
one ``SamplingParams`` per prompt; ``outputs[i].outputs[j].text``, ``.finish_reason``, ``.token_ids``,
``.index``); it has not yet been run against a real vLLM on a GPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cj2.generation.base import (
    GenerationError,
    Message,
    PromptKey,
    Sample,
    SamplingParams,
    check_request,
    finalize,
    sample_seed,
)

INSTALL_HINT = (
    'the "vllm" generation backend needs vLLM, which is not installed: pip install "cj2[vllm]" '
    "(on a CUDA machine; vLLM brings its own torch, so install it in its own environment)"
)


def import_vllm() -> Any:
    """Import vLLM, or raise an ImportError that names the ``[vllm]`` extra."""
    try:
        import vllm
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return vllm


class VLLMSampler:
    """Sampler over a ``vllm.LLM`` (unverified on GPU; see the module docstring).

    Pass a ready engine as ``llm``, or ``name_or_path`` plus ``engine_kwargs`` (``tensor_parallel_size``,
    ``dtype``, ``gpu_memory_utilization``, ``max_model_len``, ...) to build one. ``sampling_params_cls``
    defaults to ``vllm.SamplingParams``.
    """

    def __init__(
        self,
        llm: Any = None,
        *,
        name_or_path: str | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
        sampling_params_cls: Any = None,
    ):
        if llm is None or sampling_params_cls is None:
            vllm = import_vllm()
            if llm is None:
                if not name_or_path:
                    raise ValueError(
                        "the vllm backend needs an engine (llm=...) or a model (name_or_path=...)"
                    )
                llm = vllm.LLM(model=name_or_path, **dict(engine_kwargs or {}))
            if sampling_params_cls is None:
                sampling_params_cls = vllm.SamplingParams
        self.llm = llm
        self.name_or_path = name_or_path
        self.sampling_params_cls = sampling_params_cls

    def __repr__(self) -> str:
        return f"VLLMSampler(name_or_path={self.name_or_path!r})"

    def _request_params(self, n: int, params: SamplingParams, seed: int) -> Any:
        return self.sampling_params_cls(
            n=n,
            seed=seed,
            temperature=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else -1,  # -1 disables top-k in every vLLM version
            max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None,
        )

    def generate(
        self,
        prompts: Sequence[list[Message]],
        n: int,
        params: SamplingParams,
        *,
        keys: Sequence[PromptKey] | None = None,
    ) -> list[list[Sample]]:
        keys = check_request(prompts, n, keys)
        if not prompts:
            return []
        request_seeds = [sample_seed(params.seed, key, 0) for key in keys]
        request_params = [self._request_params(n, params, seed) for seed in request_seeds]
        # vLLM's own bar is off: the callers drive one bar per generate call (rejection sampling over
        # prompts, the evaluation over batches), which would otherwise interleave with it
        outputs = self.llm.chat([list(p) for p in prompts], sampling_params=request_params, use_tqdm=False)
        if len(outputs) != len(prompts):
            raise GenerationError(f"vllm returned {len(outputs)} results for {len(prompts)} prompts")
        results = []
        for i, (key, output) in enumerate(zip(keys, outputs)):
            completions = sorted(output.outputs, key=lambda c: getattr(c, "index", 0))
            if len(completions) < n:
                raise GenerationError(f"prompt {i}: vllm returned {len(completions)} samples, {n} were asked")
            row = []
            for j, completion in enumerate(completions[:n]):
                reason = completion.finish_reason
                if reason not in ("stop", "length"):
                    raise GenerationError(f"prompt {i}, sample {j}: vllm finished with {reason!r}")
                text, finish = finalize(completion.text, reason, params)
                row.append(
                    Sample(
                        text=text,
                        finish_reason=finish,
                        prompt_index=i,
                        sample_index=j,
                        seed=sample_seed(params.seed, key, j),
                        n_tokens=len(completion.token_ids),
                    )
                )
            results.append(row)
        return results
