"""Config values every entry refuses before it touches a run folder: non-finite or out-of-range numbers
(named by key, with the valid range), credentials where they would be saved
(:func:`cj2.runtime.check_secrets`) and ``+key`` / ``++key`` additions that nothing reads.

Hydra's struct mode already refuses a typo in an existing key (``trainer.max_step=3``); a ``+key`` addition
(or ``++key``, Hydra's add-or-override, where the key was not there) is how a key that is *not* in the config
gets in, so it is checked here against the sections whose keys are read as a whole (passed as keyword
arguments to a constructor that refuses unknown ones, or a group).

The numeric rules are one table of ``(pattern, rule)`` over dotted keys (``fnmatch``, first match wins),
plus two rules for every numeric leaf: it is finite (``nan``/``inf`` are refused everywhere), and a key that
names a count or a size (``n_*``, ``*_size``, ``max_*``, ``*_steps``, ...) is not negative.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import get_close_matches
from fnmatch import fnmatchcase
from typing import Any


@dataclass(frozen=True)
class Rule:
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo < value (else lo <= value)
    hi_open: bool = False
    integer: bool = False
    null: bool = True  # None allowed
    words: tuple[str, ...] = ()  # strings allowed besides numbers ("auto")

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.null
        if isinstance(value, str):
            return value in self.words
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not (isinstance(value, int) or float(value).is_integer()):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        if self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi):
            return False
        return True

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        parts = []
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            parts.append(f"in {left}{_num(self.lo)}, {_num(self.hi)}{right}")
        elif self.lo is not None:
            parts.append(f"{'>' if self.lo_open else '>='} {_num(self.lo)}")
        elif self.hi is not None:
            parts.append(f"{'<' if self.hi_open else '<='} {_num(self.hi)}")
        text = f"{kind} {' '.join(parts)}".strip()
        extra = [repr(w) for w in self.words] + (["null"] if self.null else [])
        return text + (f" (or {' or '.join(extra)})" if extra else "")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _int(lo: int, **kw) -> Rule:
    return Rule(lo=lo, integer=True, **kw)


COUNT = _int(0)
POSITIVE_INT = _int(1)
FRACTION = Rule(lo=0, hi=1)
POSITIVE = Rule(lo=0, lo_open=True)
NONNEG = Rule(lo=0)

# (dotted-key pattern, rule), first match wins. Keys of every entry (train, evaluate, refine, curate).
RULES: tuple[tuple[str, Rule], ...] = (
    ("seed", Rule(lo=0, hi=2**32 - 1, integer=True, null=False)),
    ("*.seed", Rule(lo=0, hi=2**32 - 1, integer=True)),
    ("optimizer.lr", Rule(lo=0, hi=1, lo_open=True, null=False)),
    ("optimizer.betas.*", Rule(lo=0, hi=1, hi_open=True, null=False)),
    ("optimizer.eps", Rule(lo=0, lo_open=True, null=False)),
    ("optimizer.weight_decay", Rule(lo=0, null=False)),
    ("optimizer.momentum", FRACTION),
    ("scheduler.warmup_ratio", FRACTION),
    ("scheduler.min_lr_ratio", FRACTION),
    ("scheduler.warmup_steps", COUNT),
    ("trainer.max_epochs", Rule(lo=-1, integer=True)),  # -1: no limit (max_steps decides)
    ("trainer.num_sanity_val_steps", Rule(lo=-1, integer=True)),
    ("trainer.accumulate_grad_batches", _int(1, null=False)),
    ("trainer.gradient_clip_val", NONNEG),
    ("trainer.log_every_n_steps", POSITIVE_INT),
    ("trainer.devices", Rule(lo=-1, integer=True, words=("auto",))),
    ("trainer.num_nodes", POSITIVE_INT),
    ("trainer.val_check_interval", POSITIVE),
    ("trainer.limit_*_batches", NONNEG),
    ("data.max_length", _int(8, null=False)),
    ("data.max_skip_fraction", Rule(lo=0, hi=1, null=False)),
    ("data.batch_size", _int(1, null=False)),
    ("data.eval_batch_size", _int(1, null=False)),
    ("data.pad_to_multiple_of", POSITIVE_INT),
    ("*rejection.m", POSITIVE_INT),
    ("*rejection.draws", POSITIVE_INT),
    ("*rejection.max_keep", POSITIVE_INT),
    ("*.shard_size", POSITIVE_INT),
    ("*.temperature", NONNEG),
    ("*.top_p", Rule(lo=0, hi=1, lo_open=True)),
    ("*.p_*", FRACTION),
    ("loss.weight", NONNEG),
    ("loss.k", _int(2)),
    ("loss.gamma", POSITIVE),
    ("loss.tau", POSITIVE),
    ("loss.beta", POSITIVE),
    ("loss.dpo_seq_beta", POSITIVE),
    ("loss.chunk_size", POSITIVE_INT),
    ("checkpoint_every_n_steps", POSITIVE_INT),
    ("stop_after_steps", POSITIVE_INT),
    ("callbacks.*.every_n_train_steps", POSITIVE_INT),
    ("callbacks.*.every_n_steps", COUNT),
    ("callbacks.*.n_queries", POSITIVE_INT),
    ("*.max_new_tokens", POSITIVE_INT),
    ("*.batch_size", POSITIVE_INT),
    ("*.limit", POSITIVE_INT),  # benchmark.limit: the first N items; 0 or -1 would silently drop items
    ("*.bootstrap", COUNT),
    ("*.rounds", POSITIVE_INT),
    ("*.max_items", Rule(lo=1, integer=True, words=("auto",))),
    ("*.max_generated", Rule(lo=1, integer=True, words=("auto",))),
    ("*.time_budget_s", Rule(lo=0, lo_open=True, words=("auto",))),
    ("*.threshold", FRACTION),
    ("*.ngram", POSITIVE_INT),
    ("mixture.weights.*", NONNEG),
    ("*.max_concurrency", POSITIVE_INT),
    ("*.max_retries", COUNT),
    ("*.timeout*", POSITIVE),
    ("min_votes", POSITIVE_INT),  # cj2.moj: votes the winning label needs
)

# Keys that name a count or a size: never negative, whatever the table says nothing about.
_COUNT_KEY = re.compile(
    r"(^|_)(n|num)(_|$)|_size$|^max_|_steps$|_tokens$|_batches$|_items$|_rows$|^n$|_workers$|_length$"
)
# Numbers that have a meaning below zero although their names look like counts.
_NEGATIVE_OK = ("trainer.max_epochs", "trainer.max_steps", "trainer.num_sanity_val_steps", "trainer.devices")


class ConfigValueError(ValueError):
    """A config value out of its valid range, named by its dotted key."""


def _walk(obj: Any, path: str = ""):
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}.{i}")
    else:
        yield path, obj


def _plain(cfg: Any, resolve: bool = True) -> Any:
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=resolve)
    return cfg


def _interpolation(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${")


def check_numbers(cfg: Any) -> None:
    """Raise :class:`ConfigValueError` for the first numeric config value that is not finite or is out of
    its valid range, naming the key, the value and the range."""
    plain = _plain(cfg)
    # the values as set (an interpolation is checked where its value is set, and named there)
    unresolved = _plain(cfg, resolve=False)
    if isinstance(unresolved, Mapping):
        unresolved = {k: v for k, v in unresolved.items() if k != "hydra"}
    for key, value in _walk(unresolved):
        if _interpolation(value):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigValueError(f"{key}={value}: a number must be finite (nan and inf are refused)")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
            raise ConfigValueError(f"{key}={value}: too large for any setting (at most 2**63)")
        rule = next((r for pat, r in RULES if fnmatchcase(key, pat)), None)
        if rule is not None:
            if not rule.ok(value):
                raise ConfigValueError(f"{key}={value!r} is out of range: valid is {rule.describe()}")
            continue
        last = key.rsplit(".", 1)[-1]
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if numeric and value < 0 and _COUNT_KEY.search(last) and key not in _NEGATIVE_OK:
            raise ConfigValueError(f"{key}={value!r} is out of range: a count or size, valid is >= 0")
    _check_steps(plain)


def _check_steps(plain: Any) -> None:
    trainer = plain.get("trainer") if isinstance(plain, Mapping) else None
    if not isinstance(trainer, Mapping) or "max_steps" not in trainer:
        return
    steps, epochs = trainer.get("max_steps"), trainer.get("max_epochs")
    if epochs == 0:
        raise ConfigValueError(
            "trainer.max_epochs=0 is out of range: valid is -1 (no limit: max_steps decides) or an "
            "integer >= 1"
        )
    by_epochs = isinstance(epochs, int) and not isinstance(epochs, bool) and epochs >= 1
    ok = (
        isinstance(steps, int) and not isinstance(steps, bool) and (steps >= 1 or (steps == -1 and by_epochs))
    )
    if not ok:
        raise ConfigValueError(
            f"trainer.max_steps={steps!r} is out of range: valid is an integer >= 1 (the learning-rate "
            f"schedule spans it), or -1 together with trainer.max_epochs >= 1"
        )


# Sections whose added keys are read as a whole: constructor keyword arguments that refuse unknown ones
# (trainer, optimizer, scheduler, data), sections with their own key check naming the valid keys (loss,
# generator and judge backends, benchmark, evaluate, questions, refine), callbacks (any entry with a
# _target_ is instantiated), curation's source catalog, and Hydra's own.
ADDABLE = {
    "train": ("trainer", "optimizer", "scheduler", "data", "loss", "callbacks", "hydra", "run_dir"),
    "evaluate": ("judge", "benchmark", "evaluate", "hydra", "run_dir"),
    "refine": ("judge", "policy", "second_critic", "scorer", "questions", "refine", "hydra", "run_dir"),
    "curate": ("generator", "catalog", "hydra", "run_dir"),
    "moj": ("hydra",),
}


def check_additions(entry: str, cfg: Any = None) -> None:
    """Refuse overrides that add a key nothing reads: ``+foo=1``, ``+model.dtyp=...``, and the same with
    Hydra's add-or-override ``++`` where the key was not in the config before (``++model.dtyp=...``; a
    ``++`` of an existing key, ``++optimizer.lr=1e-4``, is an ordinary override). Such a typo would
    otherwise be silently ignored. Group additions (``+experiment=...``, ``+judge@scorer=hf``) are not key
    additions. Outside a Hydra run, nothing to check.

    With the composed ``cfg``, an addition inside a section whose keys are known here (a judge's or a
    generator's backend keys, the benchmark's, ``evaluate``'s, ...: :func:`_section_keys`) is judged now,
    before the entry writes anything, rather than by the section's own check later; the message names the
    nearest valid keys."""
    try:
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.override_parser.overrides_parser import OverridesParser

        hydra_cfg = HydraConfig.get()
    except (ValueError, ImportError):
        return
    task = list(hydra_cfg.overrides.task)
    loader = GlobalHydra.instance().config_loader() if GlobalHydra.instance().is_initialized() else None
    allowed = ADDABLE.get(entry, ("hydra", "run_dir"))
    plain = _plain(cfg, resolve=False) if cfg is not None else None
    # Hydra's own parser tells ``+`` from ``++`` and a group's package from its name (a value may hold '=')
    parsed = OverridesParser.create().parse_overrides(task)
    added: list[tuple[str, str, list[str]]] = []  # (sign, key, valid keys at its place) of refused additions
    for ov in parsed:
        if not (ov.is_add() or ov.is_force_add()):
            continue
        key = ov.key_or_group
        if ov.package is not None or "/" in key:
            continue  # a config group (with a package)
        if loader is not None and loader.get_group_options(key.replace(".", "/")):
            continue  # a config group
        sign = "++" if ov.is_force_add() else "+"
        section = next((a for a in allowed if key == a or key.startswith(a + ".")), None)
        if section is None:
            added.append((sign, key, _siblings(plain, key)))
            continue
        parts = key.split(".")
        known = _section_keys(entry, section, plain.get(section) if isinstance(plain, Mapping) else None)
        if known is not None and len(parts) >= 2 and parts[1] not in known:
            added.append((sign, key, sorted(f"{section}.{k}" for k in known)))
    if any(sign == "++" for sign, _, _ in added):
        before = _config_without_force_adds(hydra_cfg, task, parsed, loader)
        added = [a for a in added if a[0] == "+" or not _has_key(before, a[1])]
    if added:
        sign, key, valid = added[0]
        from cj2.runtime import is_secret_key

        last = key.split(".")[-1]
        if key.split(".")[0] in allowed and is_secret_key(last) and not _COUNT_KEY.search(last):  # a secret
            where = key.rpartition(".")[0] or "the section"
            raise ConfigValueError(
                f"{key}: secrets never go in configs (they would be saved with the run); put the key in an "
                f"environment variable and name it with {where}.api_key_env"
            )
        sections = ", ".join(a for a in allowed if a not in ("hydra", "run_dir"))
        where = f"Keys may be added only under {sections}" if sections else f"{entry} reads no added keys"
        if key.split(".")[0] in allowed:
            where = f"{key.split('.')[0]} reads only its own keys"
        near = get_close_matches(key, valid, n=3, cutoff=0.6)
        if near:
            hint = f"The nearest valid key(s): {', '.join(near)}. "
        elif valid and len(valid) <= 30:
            hint = f"Valid keys there: {', '.join(valid)}. "
        else:
            hint = ""
        raise ConfigValueError(
            f"{sign}{key}: adds a key that {entry} does not read (a typo?). {hint}{where}; set an existing "
            f"key without '+', or see `python -m cj2.{entry} --cfg job` for every key."
        )


def _siblings(plain: Any, key: str) -> list[str]:
    """The dotted keys beside where ``key`` would go in the composed config (``model.dtype`` for
    ``model.dtyp``), the added key itself left out; none when unknown."""
    if not isinstance(plain, Mapping):
        return []
    *parent, last = key.split(".")
    node = plain
    for part in parent:
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]
    if not isinstance(node, Mapping):
        return []
    prefix = ".".join(parent) + "." if parent else ""
    return sorted(f"{prefix}{k}" for k in node if k != last)


def _section_keys(entry: str, section: str, node: Any) -> set[str] | None:
    """The keys the ``section`` of ``entry``'s config may hold (its first level), where this module can
    know them without building anything; ``None`` where the section checks its own keys later."""
    if not isinstance(node, Mapping):
        return None
    judges = {"evaluate": ("judge",), "refine": ("judge", "second_critic", "scorer")}
    generators = {"curate": ("generator",), "refine": ("policy",)}
    from cj2.generation import SAMPLERS

    backend = node.get("backend")
    if section in judges.get(entry, ()):
        from cj2.evaluation.backends import judge_keys

        return {"backend", "name", *judge_keys(backend)} if backend in SAMPLERS else None
    if section in generators.get(entry, ()):
        from cj2.generation import SAMPLER_META_KEYS

        spec = SAMPLERS.get(backend) if isinstance(backend, str) else None
        return {"backend", *SAMPLER_META_KEYS, *spec.keys} if spec is not None and spec.generates else None
    if (entry, section) == ("evaluate", "benchmark"):
        from cj2.evaluation.benchmarks import BENCHMARKS, COMMON_KEYS

        spec = BENCHMARKS.get(node.get("name")) if isinstance(node.get("name"), str) else None
        return {*COMMON_KEYS, *spec.keys} if spec is not None else None
    if (entry, section) == ("evaluate", "evaluate"):
        from cj2.evaluation.runner import EVALUATE_KEYS

        return set(EVALUATE_KEYS)
    if entry == "refine" and section in ("refine", "questions"):
        from cj2.refinement.runner import QUESTION_KEYS, REFINE_KEYS

        return set(REFINE_KEYS if section == "refine" else QUESTION_KEYS)
    return None


def _config_without_force_adds(hydra_cfg: Any, task: list[str], parsed: list[Any], loader: Any) -> Any:
    """The entry's config composed as the run's was, less its ``++`` overrides: what was there before they
    added or overrode anything (plain containers; ``None`` when it cannot be composed here)."""
    from omegaconf import OmegaConf

    config_name = hydra_cfg.job.get("config_name")
    if loader is None or not config_name:
        return None
    from hydra.types import RunMode

    kept = [text for text, ov in zip(task, parsed) if not ov.is_force_add()]
    cfg = loader.load_configuration(
        config_name=config_name,
        overrides=[*hydra_cfg.overrides.hydra, *kept],
        run_mode=RunMode.RUN,
        validate_sweep_overrides=False,
    )
    return OmegaConf.to_container(cfg, resolve=False)


def _has_key(plain: Any, key: str) -> bool:
    """Whether the dotted ``key`` names an entry of ``plain`` (a list index included); ``True`` when
    ``plain`` is unknown (``None``), so nothing is refused on a guess."""
    if plain is None:
        return True
    node = plain
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def check_config(cfg: Any, entry: str) -> None:
    """Everything an entry refuses in its config before it writes anything: secrets where they would be
    saved, ``+key`` typos, non-finite or out-of-range numbers."""
    from cj2.runtime import check_secrets

    check_secrets(cfg)
    check_additions(entry, cfg)
    check_numbers(cfg)
