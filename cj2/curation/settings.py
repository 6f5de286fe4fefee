"""A ``rejection`` config section as the arguments of :func:`~cj2.curation.rejection.rejection_sample` and
:meth:`~cj2.curation.rejection.RejectionDraws.select`, with their defaults, in one place.

Both the curation pipeline (``conf/curate.yaml``'s ``rejection``) and the RFT data of a training run
(``conf/data/builtin.yaml``'s ``data.rejection``) read their section through :meth:`RejectionSettings.
from_config`; the keys that only one of them has (the generator and its sampling, rounds, the cache
folder) are read by that one. Also here: the sampling parameters of a generator config
(:func:`sampling_params`) and the default cache folder (the generator is built lazily by
:class:`cj2.generation.LazySampler`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cj2.curation.rejection import (
    FILTERS,
    Adaptive,
    JudgePrompt,
    RejectionDraws,
    Selection,
    Worker,
    parse_worker,
    rejection_sample,
)


def default_cache_root() -> Path:
    """``$CJ2_CACHE_DIR/curation`` (default ``~/.cache/cj2/curation``)."""
    from cj2.models import cache_dir

    return cache_dir() / "curation"


def sampling_params(generator: Mapping[str, Any], seed: int) -> Any:
    """The generator config's ``sampling`` section as :class:`~cj2.generation.SamplingParams`,
    with ``seed``."""
    from cj2.generation import SamplingParams

    values = dict(generator.get("sampling") or {})
    if "stop_on_verdict" in values:
        raise ValueError(
            "generator.sampling.stop_on_verdict: set rejection.stop_on_verdict (true/false) instead; "
            "each prompt stops at its own template's verdict format"
        )
    values["seed"] = int(values.get("seed", seed))
    return SamplingParams.from_mapping(values)


@dataclass(frozen=True)
class RejectionSettings:
    """How candidates are drawn and selected (the keys of a ``rejection`` section; defaults as in the
    configs):

    * ``m``: candidates per prompt the selection looks at; ``draws`` (default ``m``): drawn once, ``m <=
      draws`` (an M sweep draws the largest M once: nested subsets);
    * ``max_keep`` (keep at most this many passing candidates per prompt; ``None``: all, Eq. 3),
      ``weight`` (``uniform`` | ``inverse_kept``), ``filter`` (``outcome`` | ``faithful``);
    * ``stop_on_verdict``, ``shard_size``, ``progress``, ``worker`` (``"i/N"``, ``slurm``, ``rank``);
    * ``adaptive: {enabled, max_failures, drop_all_pass}``: stop drawing for a prompt once ``max_keep``
      candidates pass (or after ``max_failures`` straight failures); ``drop_all_pass`` (also without
      ``enabled``) leaves out the prompts whose every candidate passed.
    """

    m: int
    draws: int
    max_keep: int | None = None
    weight: str = "uniform"
    filter: str = "outcome"
    stop_on_verdict: bool = True
    shard_size: int = 64
    progress: bool = True
    worker: Worker | None = None
    adaptive: Adaptive | None = None
    drop_all_pass: bool = False

    KEYS = (
        "m",
        "draws",
        "max_keep",
        "weight",
        "filter",
        "stop_on_verdict",
        "shard_size",
        "progress",
        "worker",
        "adaptive",
    )
    """The keys :meth:`from_config` reads."""

    @classmethod
    def from_config(
        cls, rcfg: Mapping[str, Any], *, m: int | None = None, where: str = "rejection"
    ) -> RejectionSettings:
        """Read ``rcfg`` (``m`` overrides its ``m``; ``where`` names the section in errors)."""
        m = int(rcfg.get("m", 8) if m is None else m)
        draws = int(rcfg.get("draws") or m)
        if not 1 <= m <= draws:
            raise ValueError(f"{where}.m={m}: expected 1 <= M <= {where}.draws={draws}")
        filt = str(rcfg.get("filter") or "outcome")
        if filt not in FILTERS:
            raise ValueError(f"{where}.filter={filt!r}; expected one of {sorted(FILTERS)}")
        max_keep = rcfg.get("max_keep")
        max_keep = None if max_keep is None else int(max_keep)
        acfg = dict(rcfg.get("adaptive") or {})
        unknown = sorted(set(acfg) - {"enabled", "max_failures", "drop_all_pass"})
        if unknown:
            raise ValueError(
                f"{where}.adaptive: unknown key(s) {unknown}; expected enabled, max_failures, drop_all_pass"
            )
        adaptive = None
        if acfg.get("enabled", False):
            fails = acfg.get("max_failures")
            if max_keep is None and fails is None:
                raise ValueError(
                    f"{where}.adaptive.enabled needs {where}.max_keep (stop once that many pass) or "
                    f"{where}.adaptive.max_failures (stop after that many straight failures)"
                )
            adaptive = Adaptive(
                max_keep=max_keep, max_failures=None if fails is None else int(fails), filter=filt
            )
        return cls(
            m=m,
            draws=draws,
            max_keep=max_keep,
            weight=str(rcfg.get("weight", "uniform")),
            filter=filt,
            stop_on_verdict=bool(rcfg.get("stop_on_verdict", True)),
            shard_size=int(rcfg.get("shard_size", 64)),
            progress=bool(rcfg.get("progress", True)),
            worker=parse_worker(rcfg.get("worker")),
            adaptive=adaptive,
            drop_all_pass=bool(acfg.get("drop_all_pass", False)),
        )

    def sample(
        self,
        prompts: Sequence[JudgePrompt],
        sampler: Any | Callable[[], Any],
        params: Any,
        *,
        folder_root: str | Path,
        generator_config: Mapping[str, Any],
        name: str,
        worker: Worker | None | bool = False,
    ) -> RejectionDraws:
        """:func:`~cj2.curation.rejection.rejection_sample` with these settings (``worker``: this one, not
        the configured one, unless ``False``)."""
        return rejection_sample(
            prompts,
            sampler,
            params,
            draws=self.draws,
            folder_root=folder_root,
            generator_config=generator_config,
            shard_size=self.shard_size,
            stop_on_verdict=self.stop_on_verdict,
            name=name,
            progress=self.progress,
            worker=self.worker if worker is False else worker,
            adaptive=self.adaptive,
        )

    def select(self, draws: RejectionDraws, m: int | None = None) -> Selection:
        """The kept candidates of the first ``m`` (default: this ``m``) draws of each prompt."""
        return draws.select(
            self.m if m is None else m,
            max_keep=self.max_keep,
            weight=self.weight,
            filter=self.filter,
            drop_all_pass=self.drop_all_pass,
        )
