"""Secrets stay out of saved configs, wandb configs, logs and errors; outputs stay in the run folder."""

from __future__ import annotations

import pytest

from cj2.runtime import REDACTED, confined_path, redact, run_dir, safe_name, scrub_text
from tests.test_train import cfg_for

SECRET = "sk-test-SECRET-0123456789abcdef"


def test_redact_and_scrub():
    cfg = {
        "judge": {"api_key": SECRET, "api_key_env": "OPENAI_API_KEY", "base_url": "http://h"},
        "hf_token": SECRET,
        "list": [{"password": SECRET}],
        "empty_token": None,
    }
    red = redact(cfg)
    assert SECRET not in repr(red)
    assert red["judge"]["api_key"] == REDACTED and red["judge"]["api_key_env"] == "OPENAI_API_KEY"
    assert red["empty_token"] is None


def test_scrub_text_removes_secret_env_values(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    assert SECRET not in scrub_text(f"request failed with key {SECRET}")


def test_run_paths_are_confined(tmp_path):
    assert confined_path(tmp_path, "a/b.json") == (tmp_path / "a" / "b.json").resolve()
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(ValueError, match="escapes"):
            confined_path(tmp_path, bad)
    from pathlib import Path

    parts = Path(run_dir("outputs", "../../etc", "e")).parts
    assert ".." not in parts and parts[:2] == ("outputs", "runs")
    with pytest.raises(ValueError):
        safe_name("..")


def test_training_never_writes_a_secret(tmp_path, monkeypatch, caplog):
    """A secret given in the config or the environment appears in no file the run writes."""
    from cj2.train import train

    monkeypatch.setenv("WANDB_API_KEY", SECRET)  # would make wandb online: force offline
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = cfg_for(
        tmp_path,
        "logger=default",
        f"+judge_api_key={SECRET}",
        "callbacks.generated=null",
        "trainer.max_steps=2",
    )
    train(cfg)
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []
    assert list(tmp_path.rglob("wandb/offline-run-*"))
    assert SECRET not in caplog.text


def test_models_load_without_remote_code_by_default(monkeypatch, tmp_path):
    import transformers

    from cj2.models import load_model

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RuntimeError, match="stop here"):
        load_model(str(tmp_path))
    assert seen.get("trust_remote_code") is False


def test_atomic_writes_get_the_umask_mode_not_0600(tmp_path):
    import os
    import stat

    from cj2.data.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644
