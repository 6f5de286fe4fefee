"""Shared fixtures: the SmolLM2 tokenizer and tiny random models, built offline once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")
# One OpenMP thread, set before torch loads (so the subprocess tests inherit it): the tiny models' ops gain
# nothing from a second thread on a 2-core machine and lose to the threads waiting on each other, and the
# tests that run two processes (DDP, FSDP over gloo) would otherwise ask for twice the cores there are.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)  # the in-process tests, whatever OMP_NUM_THREADS the caller set


@pytest.fixture(scope="session")
def tokenizer():
    from cj2.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture()
def tiny_model(tokenizer):
    from cj2.models import load_model

    return load_model("tiny", seed=0, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def margin_tiny_run(tmp_path_factory):
    """One training of the tiny model with the tests' default config (``tests.test_train.TINY_RUN``, margin
    objective), its untrained baselines computed into a cache of its own: ``(run folder, returned value)``.
    Shared by the tests that only read such a run (they must not write into it)."""
    import cj2.models
    from cj2.train import train
    from tests.test_train import cfg_for

    root = tmp_path_factory.mktemp("margin_tiny_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cj2.models, "cache_dir", lambda: root / "cache")
        value = train(cfg_for(root, "loss=margin"))
    return root, value
