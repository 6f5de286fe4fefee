"""Shared fixtures: the SmolLM2 tokenizer and tiny random models, built offline once per session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def tokenizer():
    from cj2.models import load_tokenizer

    return load_tokenizer("tiny")


@pytest.fixture()
def tiny_model(tokenizer):
    from cj2.models import load_model

    return load_model("tiny", seed=0, tokenizer=tokenizer)
