"""RFT training data for the DataModule: ``data.rejection.m=M`` (arXiv 2507.09104, Sec. 3.2 Eq. 3, Sec. 5.1).

The built-in training items are judged by the generator (the ``simulated`` teacher by default, a CPU
stand-in) with ``draws`` candidates per prompt, drawn once and cached; an arm with ``M`` candidates uses
the first ``M`` of them (nested subsets: M=1 is sample 0, M=4 samples 0-3), so the arms of an M sweep
differ only in M. Every passing candidate of the first M is kept (or the first ``max_keep``), optionally
weighted ``1/kept`` per prompt.

The ``rejection`` mapping (``conf/data/builtin.yaml``)::

    m: null | M            # null: off (the gold judgments of the built-in tasks)
    draws: 8               # candidates drawn once per prompt; M <= draws
    max_keep: null         # keep at most this many passing candidates per prompt
    weight: uniform        # or inverse_kept (TrainRecord.weight = 1/kept)
    generator: {backend: simulated, ...}     # any cj2.generation config
    sampling: {temperature: 1.0, max_new_tokens: 512}
    stop_on_verdict: true
    shard_size: 64
    cache_dir: null        # null: $CJ2_CACHE_DIR/curation
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cj2.data.schema import PairwiseItem, PreferenceRecord, TrainRecord

_KEYS = (
    "m",
    "draws",
    "max_keep",
    "weight",
    "generator",
    "sampling",
    "stop_on_verdict",
    "shard_size",
    "cache_dir",
    "seed",
)


def rft_metrics(stats: Mapping[str, Any], draws: int) -> dict[str, Any]:
    """The flat numbers a training run reports for its RFT data (``metrics.json`` keys)."""
    flawed = stats.get("flawed") or {}
    return {
        "M": stats["M"],
        "rft/draws": draws,
        "rft/prompts": stats["prompts"],
        "rft/kept": stats["kept"],
        "rft/keep_rate": stats["keep_rate"],
        "rft/pass_at_m": stats["pass_at_m"],
        "rft/parse_rate": stats["parse_rate"],
        "rft/zero_pass": stats["zero_pass"],
        "rft/kept_flawed_rate": flawed.get("kept_flawed_rate"),
    }


def builtin_rft(
    items: Sequence[PairwiseItem],
    rejection: Mapping[str, Any],
    *,
    templates: str | Sequence[str] = ("cj2_short",),
    seed: int = 0,
) -> tuple[list[TrainRecord], list[PreferenceRecord], dict[str, Any]]:
    """``(records, preference_pairs, info)`` for the built-in training ``items`` (module docstring).

    ``seed`` is the data seed: it draws each item's template and seeds the candidates, so every arm and
    training seed of a sweep shares the same draws. ``info`` holds ``stats`` (the selection statistics),
    ``metrics`` (:func:`rft_metrics`) and ``folder`` (the cached candidate shards).
    """
    from cj2.curation.pipeline import LazySampler, default_cache_root, sampling_params
    from cj2.curation.prompts import build_prompts
    from cj2.curation.rejection import rejection_sample
    from cj2.runtime import to_plain

    rejection = to_plain(dict(rejection))
    unknown = sorted(set(rejection) - set(_KEYS))
    if unknown:
        raise ValueError(f"data.rejection: unknown key(s) {unknown}; expected some of {sorted(_KEYS)}")
    if not items:
        raise ValueError(
            "data.rejection.m needs the built-in tasks as prompts (data.builtin.n_train > 0); for "
            "your own data run `python -m cj2.curate` and train on its train.jsonl"
        )
    m = int(rejection["m"])
    draws = int(rejection.get("draws") or m)
    if not 1 <= m <= draws:
        raise ValueError(f"data.rejection.m={m}: expected 1 <= M <= data.rejection.draws={draws}")
    names = [templates] if isinstance(templates, str) else list(templates)
    prompts = build_prompts(items, names, seed=seed)
    generator = dict(rejection.get("generator") or {"backend": "simulated"})
    sample_seed = int(rejection["seed"]) if rejection.get("seed") is not None else seed
    params = sampling_params({"sampling": rejection.get("sampling") or {}}, sample_seed)
    root = Path(rejection["cache_dir"]) if rejection.get("cache_dir") else default_cache_root()
    result = rejection_sample(
        prompts,
        LazySampler(generator),
        params,
        draws=draws,
        folder_root=root / "rejection",
        generator_config=generator,
        shard_size=int(rejection.get("shard_size", 64)),
        stop_on_verdict=bool(rejection.get("stop_on_verdict", True)),
        name="rft",
    )
    sel = result.select(m, max_keep=rejection.get("max_keep"), weight=str(rejection.get("weight", "uniform")))
    info = {
        "stats": sel.stats,
        "metrics": rft_metrics(sel.stats, draws),
        "folder": str(result.folder),
        "cache_hit": result.cache_hit,
    }
    return sel.records, sel.preferences, info
