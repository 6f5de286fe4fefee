"""Secrets never leave the process: an OpenAI-compatible judge's key comes only from the environment and
appears in no saved config, log, wandb file, per-item output or error message."""

from __future__ import annotations

from pathlib import Path

import pytest

from cj2.evaluation.backends import build_judge, check_no_secrets
from cj2.generation import ScriptedSampler
from cj2.generation.serve import serve_openai

CONF = Path(__file__).resolve().parents[1] / "cj2" / "conf"
SECRET = "sk-test-0123456789abcdef-SECRET"


def _compose(overrides):
    from hydra import compose, initialize_config_dir

    from cj2.evaluation.runner import register_resolvers

    register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("evaluate", overrides=overrides)


def _files_containing(root: Path, text: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_key_in_the_config_is_refused_without_echoing_it():
    from cj2.data.templates import get_template

    with pytest.raises(ValueError, match="environment variable") as err:
        build_judge(
            {"backend": "openai", "base_url": "http://x", "name_or_path": "m", "api_key": SECRET},
            get_template("cj2_eval"),
        )
    assert SECRET not in str(err.value)
    with pytest.raises(ValueError, match="judge.extra.token"):
        check_no_secrets({"extra": {"token": SECRET}})
    check_no_secrets({"api_key_env": "OPENAI_API_KEY", "api_key": None})  # names and empty values are fine


def test_openai_judge_end_to_end_leaves_no_trace_of_the_key(tmp_path, monkeypatch):
    from cj2.evaluate import evaluate

    monkeypatch.setenv("CJ2_TEST_JUDGE_KEY", SECRET)
    monkeypatch.setenv("WANDB_MODE", "offline")
    server, thread, url = serve_openai(
        ScriptedSampler(lambda m, k, j, s: '{"Choice": "Model A"}'), model_name="judge", api_key=SECRET
    )
    try:
        cfg = _compose(
            [
                "judge=openai",
                f"judge.base_url={url}",
                "judge.name_or_path=judge",
                "judge.api_key_env=CJ2_TEST_JUDGE_KEY",
                "judge.max_new_tokens=16",
                "benchmark.n_queries=1",
                "benchmark.scenarios=[arithmetic]",
                f"output_root={tmp_path}",
                "evaluate.bootstrap=0",
                "evaluate.progress=false",
                "logger.wandb.enabled=true",
            ]
        )
        assert evaluate(cfg) is not None
        folder = next((tmp_path / "eval" / "embedded").iterdir())
        assert (folder / "judgments.jsonl").exists() and (folder / "wandb").exists()
        saved = (folder / "config.yaml").read_text()
        assert "api_key_env: CJ2_TEST_JUDGE_KEY" in saved
        assert _files_containing(tmp_path, SECRET) == []

        # a server that rejects the key: the error names the failure, never the key
        monkeypatch.setenv("CJ2_TEST_JUDGE_KEY", SECRET + "-wrong")
        bad = _compose(
            [
                "judge=openai",
                f"judge.base_url={url}",
                "judge.name_or_path=judge",
                "judge.api_key_env=CJ2_TEST_JUDGE_KEY",
                "judge.max_retries=0",
                "run_name=rejected",
                "benchmark.n_queries=1",
                "benchmark.scenarios=[arithmetic]",
                f"output_root={tmp_path}",
                "evaluate.progress=false",
                "logger.wandb.enabled=false",
            ]
        )
        with pytest.raises(Exception) as err:  # noqa: B017 - any failure, as long as it carries no key
            evaluate(bad)
        assert SECRET not in str(err.value) and SECRET not in repr(err.value)
        assert _files_containing(tmp_path, SECRET) == []
    finally:
        server.shutdown()
        server.server_close()
