"""Confidence intervals: percentile bootstrap (any statistic) and the Wilson interval of a proportion."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from statistics import NormalDist
from typing import Any, overload

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, as_float_list

_CHUNK_ELEMENTS = 1 << 23


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _mean_over_items(resamples: Tensor) -> Tensor:
    return resamples.mean(dim=1)


def percentile_interval(samples: Tensor, alpha: float = 0.05) -> tuple[float, float]:
    """The (alpha/2, 1 - alpha/2) quantiles of ``samples`` (linear interpolation; NaN if any sample is)."""
    _check_alpha(alpha)
    samples = samples.double().reshape(-1)
    if torch.isnan(samples).any():
        return math.nan, math.nan
    q = torch.quantile(samples, torch.tensor([alpha / 2, 1 - alpha / 2], dtype=torch.float64))
    return float(q[0]), float(q[1])


def bootstrap_ci(
    values: Tensor | Sequence[float],
    statistic: Callable[[Tensor], Tensor] | None = None,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap ``(low, high)`` interval of ``statistic`` over the items (rows) of ``values``.

    ``values`` is ``[N]`` or ``[N, ...]``; rows are drawn with replacement, ``n_resamples`` times, with a
    generator seeded by ``seed`` (so the interval is a pure function of the inputs). ``statistic`` receives
    the whole batch of resamples, shape ``[n_resamples, N, ...]``, and must reduce dim 1 to one number per
    resample (shape ``[n_resamples]``); the default is the mean over items.
    """
    values = torch.as_tensor(values, dtype=torch.float64) if not isinstance(values, Tensor) else values
    if values.ndim == 0 or len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one item")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    statistic = statistic or _mean_over_items
    gen = torch.Generator().manual_seed(seed)
    values = values.cpu()
    per_chunk = max(1, _CHUNK_ELEMENTS // len(values))  # bounds memory at ~2^23 drawn items per chunk
    stats = []
    for start in range(0, n_resamples, per_chunk):
        rows = min(per_chunk, n_resamples - start)
        chunk = statistic(values[torch.randint(len(values), (rows, len(values)), generator=gen)])
        if chunk.shape != (rows,):
            raise ValueError(
                "statistic must reduce [n_resamples, N, ...] to [n_resamples], "
                f"got shape {tuple(chunk.shape)}"
            )
        stats.append(chunk)
    return percentile_interval(torch.cat(stats), alpha)


def _resample(strata: list[Tensor], gen: torch.Generator) -> Tensor:
    return torch.cat([s[torch.randint(len(s), (len(s),), generator=gen)] for s in strata])


@overload
def bootstrap_ci_fn(
    fn: Callable[[Tensor], float],
    n: int,
    n_resamples: int = ...,
    alpha: float = ...,
    seed: int = ...,
    strata: Tensor | None = ...,
) -> tuple[float, float]: ...
@overload
def bootstrap_ci_fn(
    fn: Callable[[Tensor], Mapping[str, float]],
    n: int,
    n_resamples: int = ...,
    alpha: float = ...,
    seed: int = ...,
    strata: Tensor | None = ...,
) -> dict[str, tuple[float, float]]: ...
def bootstrap_ci_fn(
    fn: Callable[[Tensor], Any],
    n: int,
    n_resamples: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
    strata: Tensor | None = None,
) -> Any:
    """Percentile-bootstrap interval of a statistic that is not a simple reduction (e.g. a benchmark score).

    ``fn(index)`` computes the statistic on the items selected by ``index`` (an int64 tensor of item
    positions, with repeats) and returns a float, or a mapping name -> float for several statistics at once
    (then the result maps each name to its interval). With ``strata`` (``[n]`` integer labels), each stratum
    is resampled within itself and keeps its size, as a per-scenario benchmark needs.
    """
    if n < 1:
        raise ValueError("bootstrap_ci_fn needs at least one item")
    _check_alpha(alpha)
    if strata is None:
        groups = [torch.arange(n)]
    else:
        if len(strata) != n:
            raise ValueError(f"strata has {len(strata)} labels for {n} items")
        groups = [(strata == s).nonzero().reshape(-1) for s in torch.unique(strata)]
    gen = torch.Generator().manual_seed(seed)
    draws = [fn(_resample(groups, gen)) for _ in range(n_resamples)]
    if isinstance(draws[0], Mapping):
        return {k: percentile_interval(torch.tensor([d[k] for d in draws]), alpha) for k in draws[0]}
    return percentile_interval(torch.tensor([float(d) for d in draws]), alpha)


def binomial_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval ``(low, high)`` for a proportion with ``k`` successes out of ``n``.

    Unlike the normal (Wald) interval it stays inside [0, 1] and is sensible at 0 or n successes. With
    ``n == 0`` nothing is known and the interval is the whole ``(0.0, 1.0)``.
    """
    _check_alpha(alpha)
    if n < 0 or not 0 <= k <= n:
        raise ValueError(f"binomial_ci needs 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - alpha / 2)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # clamp: at k=0 or k=n the bound is exactly 0 or 1 but float arithmetic may land 1e-17 outside
    return max(0.0, center - half), min(1.0, center + half)


class BootstrapCI(JudgeMetric):
    """Mean of per-item values (e.g. 0/1 correctness) with its percentile-bootstrap interval.

    ``update(values)`` appends to a ``cat`` state, so the items of every rank are pooled under DDP. The
    values are sorted before resampling, which makes the interval independent of the order in which ranks
    and batches delivered them: a DDP run gives the same interval as a single process. ``compute()`` returns
    ``mean``, ``low``, ``high`` and ``n``.
    """

    def __init__(self, n_resamples: int = 1000, alpha: float = 0.05, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_alpha(alpha)
        self.n_resamples, self.alpha, self.seed = n_resamples, alpha, seed
        self._add_cat_state("values", torch.float64)

    def update(self, values: Tensor | Sequence[float]) -> None:
        self._append("values", as_float_list(values, "values"))

    def compute(self) -> dict[str, Tensor]:
        values = torch.sort(self._cat("values").cpu()).values
        if not len(values):
            nan = torch.tensor(math.nan, dtype=torch.float64)
            return {"mean": nan, "low": nan.clone(), "high": nan.clone(), "n": torch.tensor(0)}
        low, high = bootstrap_ci(values, n_resamples=self.n_resamples, alpha=self.alpha, seed=self.seed)
        return {
            "mean": values.mean(),
            "low": torch.tensor(low, dtype=torch.float64),
            "high": torch.tensor(high, dtype=torch.float64),
            "n": torch.tensor(len(values)),
        }
