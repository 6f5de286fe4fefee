"""Mixing the components of the training set with weights, and reporting the mix that came out.

The paper's training set has four components (arXiv 2507.09104, Sec. 3.1): public judge data, RFT data
(rejection-sampled public reward data), synthetic data and general instruction data (G-SFT, ``format:
none``, CE only); the paper reports no sizes or proportions, so they are weights here.

A weight multiplies a component: ``1`` keeps every record, ``0.5`` a seeded half, ``2`` every record twice,
``1.5`` every record once and a seeded half again (the fractional part picks records by a hash of the
seed, component and id, so the choice does not depend on record order). Copies get ``@k`` appended to their
ids. The mixed records are interleaved in a seeded hash order. :func:`mix` returns them with a report:
per component the records available, the weight, the records selected and their share of the mix, and
the realised shares per source, verdict format and verdict label.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cj2.data.schema import TrainRecord

COMPONENTS = ("public_judge", "rft", "synthetic", "general")


def _fraction(*parts: object) -> float:
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _shares(counter: Counter, total: int) -> dict[str, dict[str, float]]:
    return {
        str(k): {"records": v, "share": v / total if total else 0.0}
        for k, v in sorted(counter.items(), key=lambda kv: str(kv[0]))
    }


def mix(
    components: Mapping[str, Sequence[TrainRecord]], weights: Mapping[str, float], *, seed: int
) -> tuple[list[TrainRecord], dict[str, Any]]:
    """Weighted mixture of ``components`` (module docstring); every component needs a weight."""
    missing = [c for c in components if c not in weights]
    if missing:
        raise ValueError(
            f"mixture.weights has no weight for component(s) {missing}; weights given: {dict(weights)}"
        )
    for name, w in weights.items():
        if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) or w < 0:
            raise ValueError(f"mixture.weights.{name}={w!r}: expected a finite number >= 0")
    mixed: list[tuple[float, TrainRecord]] = []
    report: dict[str, Any] = {"components": {}}
    for name, records in components.items():
        w = float(weights[name])
        whole, frac = int(w), w - int(w)
        chosen: list[TrainRecord] = []
        for k in range(whole):
            chosen += [r if k == 0 else dataclasses.replace(r, id=f"{r.id}@{k}") for r in records]
        if frac > 0:
            n_extra = round(frac * len(records))
            order = sorted(records, key=lambda r: (_fraction("mix", seed, name, r.id), r.id))
            chosen += [
                r if whole == 0 else dataclasses.replace(r, id=f"{r.id}@{whole}") for r in order[:n_extra]
            ]
        for r in chosen:
            r = dataclasses.replace(r, meta={**r.meta, "component": name})
            mixed.append((_fraction("order", seed, r.id, name), r))
        report["components"][name] = {"available": len(records), "weight": w, "selected": len(chosen)}
    mixed.sort(key=lambda x: (x[0], x[1].id))
    out = [r for _, r in mixed]
    total = len(out)
    for entry in report["components"].values():
        entry["share"] = entry["selected"] / total if total else 0.0
    report["total"] = total
    report["per_source"] = _shares(Counter(r.source for r in out), total)
    report["per_format"] = _shares(Counter(r.format for r in out), total)
    report["verdicts"] = _shares(Counter(r.verdict if r.verdict is not None else "none" for r in out), total)
    return out, report
