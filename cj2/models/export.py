"""Export a trained judge as a plain Hugging Face folder that ``transformers`` loads without cj2."""

from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from cj2.models.loading import make_readable, unwrap_model

JUDGE_CARD = "cj2_judge.json"
"""File in an exported folder naming the template and verdict format the judge was trained with."""


def read_judge_card(path: str | os.PathLike) -> dict:
    """The judge card of an exported folder (``{}`` when ``path`` is not a folder or has none)."""
    card = Path(path).expanduser() / JUDGE_CARD
    if not card.is_file():
        return {}
    try:
        data = json.loads(card.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{card}: not a readable JSON judge card ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{card}: a judge card is a JSON object, got {type(data).__name__}")
    return data


def _is_peft(model: torch.nn.Module) -> bool:
    # Checked by class origin so that cj2 does not need peft installed to export a plain model.
    return any(
        cls.__module__.startswith("peft.") and cls.__name__ == "PeftModel" for cls in type(model).__mro__
    )


def export_hf(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: str | os.PathLike,
    *,
    merge: bool = True,
    overwrite: bool = True,
    judge_card: dict | None = None,
) -> Path:
    """Write ``model`` and ``tokenizer`` (with its chat template) to ``out_dir`` and return its path.

    The folder holds ``config.json``, ``generation_config.json``, safetensors weights and the tokenizer
    files, and loads with ``AutoModelForCausalLM.from_pretrained(out_dir)`` alone. ``torch.compile``
    wrappers are unwrapped. A PEFT model is merged into its base weights (``merge_and_unload`` on a
    deep copy, so the caller's model keeps its adapters and can go on training); with ``merge=False``
    only the adapter is written, as PEFT's own ``save_pretrained`` does.

    The write is atomic: everything goes to a temporary folder beside ``out_dir`` that is renamed into
    place, so a kill mid-export leaves either the previous folder or the new one. An existing
    ``out_dir`` is replaced when ``overwrite`` is true, else :class:`FileExistsError` is raised.

    ``judge_card`` (e.g. ``{"template": "cj2_check", "format": "cj2_choice"}``) is written as
    :data:`JUDGE_CARD`; :meth:`cj2.judge.Judge.from_pretrained` and ``cj2.evaluate`` then prompt the judge
    with the template it was trained on unless told otherwise.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)

    inner = unwrap_model(model)
    if _is_peft(inner) and merge:
        inner = copy.deepcopy(inner).merge_and_unload()
    if not hasattr(inner, "save_pretrained"):
        raise TypeError(f"cannot export {type(inner).__name__}: it is not a transformers/PEFT model")

    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        config = getattr(inner, "config", None)
        # Training with gradient checkpointing turns the KV cache off; the exported judge is for inference.
        restore_cache = config is not None and getattr(config, "use_cache", None) is False
        if restore_cache:
            config.use_cache = True
        try:
            inner.save_pretrained(tmp)
        finally:
            if restore_cache:
                config.use_cache = False
        tokenizer.save_pretrained(tmp)
        if judge_card:
            (tmp / JUDGE_CARD).write_text(json.dumps(judge_card, indent=2, sort_keys=True) + "\n")
        make_readable(tmp)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{int(time.time() * 1000)}"
            out.rename(old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
