"""Generator backends behind one sampler protocol (arXiv 2507.09104, Sec. 3.2: rejection sampling).

:class:`Sampler` draws ``n`` samples for each chat prompt; :func:`build_sampler` makes one from a config
mapping whose ``backend`` is one of:

* ``hf``: a local ``transformers`` model, batched and length-sorted (:class:`HFSampler`);
* ``vllm``: vLLM's offline engine, optional (:class:`VLLMSampler`, the ``[vllm]`` extra);
* ``openai``: any OpenAI-compatible HTTP endpoint (:class:`OpenAISampler`);
* ``scripted``: fixed outputs for tests (:class:`ScriptedSampler`);
* ``simulated``: a programmatic teacher for the built-in verifiable tasks, a CPU stand-in for a large
  generator (:class:`~cj2.generation.simulated.SimulatedTeacher`), never the default for real data.

Every backend's text goes through the same stop logic (:func:`finalize`). Each backend is one
:class:`SamplerSpec` in :data:`SAMPLERS` (its factory and its config keys); adding one = a factory
registered with :func:`register_sampler` and a ``conf/generator/<name>.yaml``.

:data:`SAMPLERS` is also the one registry of **judges** (:class:`cj2.judge.JudgeProtocol`): every
registered generator judges greedily through :meth:`cj2.Judge.from_sampler` in ``cj2.evaluate``,
``cj2.refine`` and the in-training evaluation alike (:func:`cj2.evaluation.backends.build_judge`). A kind
that builds its judge another way registers a judge factory with :func:`register_judge`: ``hf`` (a local
model, with verdict probabilities), ``predictions`` (recorded outputs) and ``logits`` (verdict-logit
scoring only), the last two judges but not generators.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from cj2.generation.base import (
    FINISH_REASONS,
    GenerationError,
    Lazy,
    LazySampler,
    Sample,
    Sampler,
    SamplingParams,
    finalize,
    sample_seed,
    verdict_end,
)
from cj2.generation.scripted import ScriptedSampler

# factory(options) -> Sampler; ``options`` is the config without ``backend`` and the caller's keys, and
# holds only keys the spec lists.
SamplerFactory = Callable[[dict[str, Any]], Sampler]
# judge factory(options, template, settings) -> a judge (cj2.judge.JudgeProtocol); ``options`` holds only the
# keys the spec's ``judge_keys`` list, ``settings`` the judge's ``batch_size``, ``max_new_tokens`` and
# ``analysis`` (the forced answer skeleton's text in verdict-logit scoring).
JudgeFactory = Callable[[dict[str, Any], Any, dict[str, Any]], Any]


@dataclass(frozen=True)
class SamplerSpec:
    """One registered kind: the factory that builds its sampler (``None`` for a judge that generates
    nothing) and the config keys it accepts (besides ``backend``), any other key being a typo and an
    error; whether it computes on this machine (``local``: its ``device`` key says where). Where the kind
    builds its judge otherwise than as a greedy :class:`cj2.Judge` over the sampler (:func:`register_judge`):
    the judge factory, its keys, whether that judge reads verdict logits (with a single-token verdict
    format), writes judgments, and is built at once rather than on first use."""

    name: str
    build: SamplerFactory | None = None
    keys: tuple[str, ...] = ()
    local: bool = False
    judge: JudgeFactory | None = None
    judge_keys: tuple[str, ...] = ()
    verdict_logits: bool = False
    writes: bool = True
    eager: bool = False

    @property
    def generates(self) -> bool:
        """Whether the kind is a generator (``build_sampler`` builds it), not only a judge."""
        return self.build is not None


SAMPLERS: dict[str, SamplerSpec] = {}


def register_sampler(
    name: str, *, keys: Sequence[str] = (), local: bool = False
) -> Callable[[SamplerFactory], SamplerFactory]:
    """Decorator: make the factory ``fn`` selectable as ``backend: <name>`` in a generator config (and in
    a judge config: a greedy judge over the sampler). ``local``: the sampler computes on this machine, on
    the config's ``device`` (CPU caps apply)."""

    def register(fn: SamplerFactory) -> SamplerFactory:
        old = SAMPLERS.get(name) or SamplerSpec(name)
        SAMPLERS[name] = replace(old, build=fn, keys=tuple(keys), local=local)
        return fn

    return register


def register_judge(
    name: str,
    *,
    keys: Sequence[str] = (),
    local: bool | None = None,
    verdict_logits: bool = False,
    writes: bool = True,
    eager: bool = False,
) -> Callable[[JudgeFactory], JudgeFactory]:
    """Decorator: build the judge of ``backend: <name>`` with ``fn(options, template, settings)`` instead of
    a greedy judge over the sampler (a kind that is not a generator is registered this way alone). ``keys``
    are its config keys besides the judge's own (``template``, ``batch_size``, ``max_new_tokens``);
    ``local`` (default: as the generator of that name), ``verdict_logits``, ``writes`` and ``eager`` are
    what a run knows of the judge before building it (:class:`SamplerSpec`)."""

    def register(fn: JudgeFactory) -> JudgeFactory:
        old = SAMPLERS.get(name) or SamplerSpec(name)
        SAMPLERS[name] = replace(
            old,
            judge=fn,
            judge_keys=tuple(keys),
            local=old.local if local is None else local,
            verdict_logits=verdict_logits,
            writes=writes,
            eager=eager,
        )
        return fn

    return register


def generators() -> list[str]:
    """The names of the registered generators (the kinds :func:`build_sampler` builds)."""
    return [name for name, spec in SAMPLERS.items() if spec.generates]


def config_on_cpu(cfg: Mapping[str, Any] | None) -> bool:
    """Whether the generator or judge of ``cfg`` computes on this machine's CPU: a ``local`` kind whose
    ``device`` is ``cpu``, or ``auto``/unset without CUDA. Remote and recorded kinds cost this machine
    nothing."""
    spec = SAMPLERS.get(cfg.get("backend")) if cfg else None  # type: ignore[arg-type]
    if spec is None or not spec.local:
        return False
    device = str(cfg.get("device") or "auto")  # type: ignore[union-attr]
    if device == "auto":
        import torch

        return not torch.cuda.is_available()
    return device == "cpu"


# Keys that belong to the caller (sampling settings, descriptions) and are ignored here.
SAMPLER_META_KEYS = ("sampling", "name", "description")


def build_sampler(cfg: Mapping[str, Any]) -> Sampler:
    """Build a sampler from a config mapping: ``{"backend": "hf", "name_or_path": "tiny", ...}``.

    Per backend (defaults in brackets):

    * ``hf``: ``name_or_path`` [``"smollm2_135m"``], ``tokenizer`` [same as the model], ``dtype``
      [``"auto"``: :func:`cj2.generation.hf.decoding_dtype`, bf16 only where the hardware runs it natively,
      else float32; float32 for the tiny test model], ``batch_size`` [8 sequences], ``device`` [the
      model's], ``seed`` [0, the tiny model's init seed], ``attn_implementation`` [``"auto"``],
      ``trust_remote_code`` [False], ``verdict_check_every`` [8], ``share_prefill`` [True], ``attention``
      [``"auto"``], ``engine`` [``"auto"``: continuous batching where supported], ``fuse`` [False],
      ``sync_every`` [1 on a CPU, 8 on a GPU];
    * ``vllm``: ``name_or_path`` (required), ``engine_kwargs`` [{}] for ``vllm.LLM``;
    * ``openai``: ``base_url`` and ``name_or_path`` (the served model's name) required, ``api_key_env``
      [``"OPENAI_API_KEY"``, the *name* of the variable], ``max_concurrency`` [8], ``timeout_s`` [120],
      ``max_retries`` [5], ``backoff_s`` [1], ``backoff_max_s`` [60], ``extra_body`` [{}];
    * ``scripted``: ``outputs`` (a mapping prompt key -> list of texts);
    * ``simulated``: ``p_correct``, ``p_flawed_given_correct``, ``p_sound_given_wrong``, ``template``.

    A backend added with :func:`register_sampler` takes the keys it was registered with. Keys ``sampling``,
    ``name`` and ``description`` are left to the caller; any other unknown key is an error that names it,
    and an unregistered backend is an error that lists the registered ones.
    """
    from cj2.runtime import to_plain  # here: cj2.runtime loads torch

    cfg = to_plain(cfg)  # Hydra hands over an OmegaConf DictConfig
    backend = cfg.get("backend")
    if not isinstance(backend, str) or backend not in SAMPLERS or not SAMPLERS[backend].generates:
        raise ValueError(
            f"generator config: backend={backend!r} is not one of the registered backends: "
            f"{', '.join(generators())}"
        )
    spec = SAMPLERS[backend]
    assert spec.build is not None
    options = {k: v for k, v in cfg.items() if k != "backend" and k not in SAMPLER_META_KEYS}
    unknown = sorted(set(options) - set(spec.keys))
    if unknown:
        raise ValueError(
            f"generator config (backend {backend!r}): unknown key(s) {unknown}; "
            f"expected some of {sorted(spec.keys)}"
        )
    return spec.build(options)


# --------------------------------------------------------------------------------------------------------
# The backends: one registered factory each (heavy imports inside, so `import cj2.generation` stays light).


@register_sampler(
    "hf",
    local=True,
    keys=(
        "name_or_path",
        "tokenizer",
        "dtype",
        "batch_size",
        "device",
        "seed",
        "attn_implementation",
        "trust_remote_code",
        "verdict_check_every",
        "share_prefill",
        "attention",
        "engine",
        "fuse",
        "sync_every",
    ),
)
def _hf(options: dict[str, Any]) -> Sampler:
    from cj2.generation.hf import HFSampler, decoding_dtype
    from cj2.models import EMBEDDED, TINY, load_model, load_tokenizer

    name = options.get("name_or_path", EMBEDDED)
    dtype = options.get("dtype", "auto")
    if dtype == "auto":  # the tiny model is a float32 test fixture
        dtype = "float32" if name == TINY else decoding_dtype(options.get("device") or "cpu")
    trust = bool(options.get("trust_remote_code", False))
    tokenizer = load_tokenizer(options.get("tokenizer") or name, trust_remote_code=trust)
    model = load_model(
        name,
        dtype=dtype,
        tokenizer=tokenizer,
        seed=int(options.get("seed", 0)),
        trust_remote_code=trust,
        attn_implementation=options.get("attn_implementation", "auto"),
    )
    if options.get("device") is not None:
        model = model.to(options["device"])
    return HFSampler(
        model,
        tokenizer,
        batch_size=int(options.get("batch_size", 8)),
        device=options.get("device"),
        verdict_check_every=int(options.get("verdict_check_every", 8)),
        share_prefill=bool(options.get("share_prefill", True)),
        attention=options.get("attention", "auto"),
        engine=options.get("engine", "auto"),
        fuse=bool(options.get("fuse", False)),
        sync_every=options.get("sync_every"),
    )


@register_sampler("vllm", keys=("name_or_path", "engine_kwargs"))
def _vllm(options: dict[str, Any]) -> Sampler:
    from cj2.generation.vllm_engine import VLLMSampler

    if not options.get("name_or_path"):
        raise ValueError("generator config (backend 'vllm'): name_or_path is required")
    return VLLMSampler(name_or_path=options["name_or_path"], engine_kwargs=options.get("engine_kwargs"))


_OPENAI_OPTIONS = (
    "api_key_env",
    "max_concurrency",
    "timeout_s",
    "max_retries",
    "backoff_s",
    "backoff_max_s",
    "extra_body",
)


@register_sampler("openai", keys=("base_url", "name_or_path", *_OPENAI_OPTIONS))
def _openai(options: dict[str, Any]) -> Sampler:
    from cj2.generation.openai_api import OpenAISampler

    for required in ("base_url", "name_or_path"):
        if not options.get(required):
            raise ValueError(f"generator config (backend 'openai'): {required} is required")
    kwargs = {k: options[k] for k in _OPENAI_OPTIONS if k in options}
    return OpenAISampler(options["base_url"], options["name_or_path"], **kwargs)


@register_sampler("scripted", keys=("outputs",))
def _scripted(options: dict[str, Any]) -> Sampler:
    if "outputs" not in options:
        raise ValueError("generator config (backend 'scripted'): outputs is required")
    return ScriptedSampler(options["outputs"])


@register_sampler(
    "simulated", keys=("p_correct", "p_flawed_given_correct", "p_sound_given_wrong", "template")
)
def _simulated(options: dict[str, Any]) -> Sampler:
    from cj2.generation.simulated import SimulatedTeacher

    return SimulatedTeacher(**options)


def __getattr__(name: str) -> Any:
    # The heavier backends load on first use, so `import cj2.generation` stays light.
    if name == "HFSampler":
        from cj2.generation.hf import HFSampler

        return HFSampler
    if name == "OpenAISampler":
        from cj2.generation.openai_api import OpenAISampler

        return OpenAISampler
    if name == "VLLMSampler":
        from cj2.generation.vllm_engine import VLLMSampler

        return VLLMSampler
    if name == "serve_openai":
        from cj2.generation.serve import serve_openai

        return serve_openai
    if name == "SimulatedTeacher":
        from cj2.generation.simulated import SimulatedTeacher

        return SimulatedTeacher
    raise AttributeError(f"module 'cj2.generation' has no attribute {name!r}")


__all__ = [
    "FINISH_REASONS",
    "JudgeFactory",
    "SAMPLERS",
    "GenerationError",
    "Lazy",
    "LazySampler",
    "HFSampler",
    "OpenAISampler",
    "Sample",
    "Sampler",
    "SamplerSpec",
    "SamplingParams",
    "ScriptedSampler",
    "SimulatedTeacher",
    "VLLMSampler",
    "build_sampler",
    "config_on_cpu",
    "generators",
    "finalize",
    "register_judge",
    "register_sampler",
    "sample_seed",
    "serve_openai",
    "verdict_end",
]
