"""Where ``loss=grpo`` draws its judgments: the policy itself, in-process (``hf``) or in a vLLM engine.

* :class:`HFPolicyRollout` decodes with :class:`cj2.generation.hf.HFSampler` on the very module being trained
  (eval mode, no grad), so every rollout is drawn with the current weights.
* :class:`VLLMPolicyRollout` decodes with :class:`cj2.generation.vllm_engine.VLLMSampler`. Every
  ``sync_every`` optimizer steps it writes the policy as a Hugging Face folder
  (:func:`cj2.models.export.export_hf`, PEFT adapters merged on a copy) and builds a new engine from it,
  ``vllm.LLM(model=<folder>, **engine_kwargs)``: the documented constructor, nothing internal to vLLM.
  Reloading costs an engine start per sync; it is what the issue allows and it works with any vLLM
  version cj2 supports. The sync points are the multiples of ``sync_every`` (step 0 included), and the folder
  of the last one is kept, so a run resumed from a checkpoint reloads the weights the uninterrupted run
  was sampling with. **Unverified without a GPU**: tested here with a stand-in engine only.

Seeds. Step ``s`` of a run with seed ``seed`` samples with the base seed :func:`rollout_seed` ``(seed, s)``,
and sample ``j`` of the prompt ``key`` with :func:`cj2.generation.base.sample_seed` of (that, key, j): a pure
function of (seed, global step, prompt key, sample index), so a resumed run draws what an uninterrupted one
drew.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cj2.generation.base import Message, PromptKey, Sample, SamplingParams

log = logging.getLogger(__name__)

_SEED_MODULUS = 2**31 - 1


def rollout_seed(seed: int, global_step: int) -> int:
    """The base sampling seed of optimizer step ``global_step`` of a run seeded ``seed``."""
    digest = hashlib.sha256(f"cj2.grpo|{int(seed)}|{int(global_step)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % _SEED_MODULUS


class HFPolicyRollout:
    """Rollouts from the in-process policy through :class:`~cj2.generation.hf.HFSampler`."""

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 64):
        from cj2.generation.hf import HFSampler

        self.sampler = HFSampler(model, tokenizer, batch_size=batch_size)

    def sync(self, model: Any, global_step: int) -> None:
        """Nothing to do: the sampler decodes with the module being trained."""

    def generate(
        self, prompts: Sequence[list[Message]], n: int, params: SamplingParams, keys: Sequence[PromptKey]
    ) -> list[list[Sample]]:
        return self.sampler.generate(prompts, n, params, keys=keys)


class VLLMPolicyRollout:
    """Rollouts from a vLLM engine reloaded from the policy's export every ``sync_every`` steps.

    ``engine_factory(folder)`` builds the engine (default: ``vllm.LLM(model=folder, **engine_kwargs)``);
    ``exporter(model, tokenizer, folder)`` writes the policy (default: :func:`cj2.models.export.export_hf`).
    Tests pass stand-ins for both. ``keep`` sync folders are kept (the newest ones).
    """

    def __init__(
        self,
        tokenizer: Any,
        export_root: str | Path,
        *,
        sync_every: int = 1,
        engine_kwargs: Mapping[str, Any] | None = None,
        engine_factory: Callable[[str], Any] | None = None,
        exporter: Callable[[Any, Any, Path], Any] | None = None,
        sampling_params_cls: Any = None,
        keep: int = 2,
    ):
        if sync_every < 1:
            raise ValueError(f"sync_every={sync_every}: expected >= 1")
        self.tokenizer = tokenizer
        self.export_root = Path(export_root)
        self.sync_every = int(sync_every)
        self.engine_kwargs = dict(engine_kwargs or {})
        self.engine_factory = engine_factory or self._vllm_engine
        self.exporter = exporter or _export_policy
        self.sampling_params_cls = sampling_params_cls
        self.keep = max(1, int(keep))
        self.loaded_step: int | None = None  # the sync step whose weights the engine holds
        self.sampler: Any = None
        self.syncs = 0

    def _vllm_engine(self, folder: str) -> Any:
        from cj2.generation.vllm_engine import import_vllm

        return import_vllm().LLM(model=folder, **self.engine_kwargs)

    def sync_step(self, global_step: int) -> int:
        """The sync point whose weights step ``global_step`` samples with."""
        return global_step - global_step % self.sync_every

    def folder(self, sync_step: int) -> Path:
        return self.export_root / f"step-{sync_step:08d}"

    def sync(self, model: Any, global_step: int) -> None:
        """Load the weights of this step's sync point into the engine (export them first when this step is
        the sync point; on a resume, reload the sync point's folder written before the interruption)."""
        k = self.sync_step(global_step)
        if self.loaded_step == k and self.sampler is not None:
            return
        folder = self.folder(k)
        if k == global_step or not folder.exists():
            if k != global_step:
                log.warning(
                    "vllm rollouts: the export of sync step %d is missing (%s); syncing the weights of "
                    "step %d instead, so this run's rollouts differ from an uninterrupted run's",
                    k,
                    folder,
                    global_step,
                )
            self.exporter(model, self.tokenizer, folder)
        self._drop_engine()
        from cj2.generation.vllm_engine import VLLMSampler

        engine = self.engine_factory(str(folder))
        self.sampler = VLLMSampler(
            llm=engine, sampling_params_cls=self.sampling_params_cls or _default_params()
        )
        self.loaded_step = k
        self.syncs += 1
        self._prune(k)

    def _drop_engine(self) -> None:
        if self.sampler is None:
            return
        engine, self.sampler = self.sampler.llm, None
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        del engine
        import gc

        gc.collect()

    def _prune(self, current: int) -> None:
        folders = sorted(p for p in self.export_root.glob("step-*") if p.is_dir())
        for p in folders[: max(0, len(folders) - self.keep)]:
            if p != self.folder(current):
                shutil.rmtree(p, ignore_errors=True)

    def generate(
        self, prompts: Sequence[list[Message]], n: int, params: SamplingParams, keys: Sequence[PromptKey]
    ) -> list[list[Sample]]:
        if self.sampler is None:
            raise RuntimeError("VLLMPolicyRollout.generate before sync(): no engine is loaded")
        return self.sampler.generate(prompts, n, params, keys=keys)


def _default_params() -> Any:
    from cj2.generation.vllm_engine import import_vllm

    return import_vllm().SamplingParams


def _export_policy(model: Any, tokenizer: Any, folder: Path) -> None:
    from cj2.distributed import full_model, is_fsdp2
    from cj2.models.export import export_hf

    export_hf(full_model(model) if is_fsdp2(model) else model, tokenizer, folder)


__all__ = ["HFPolicyRollout", "VLLMPolicyRollout", "rollout_seed"]
