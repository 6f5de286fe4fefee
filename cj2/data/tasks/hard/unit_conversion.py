"""Hard tier: metric and time unit conversions (km to m, g to kg, h to min, ...).

Wrong answers: a wrong unit factor (100 for 1000) or a misplaced decimal point, the wrong value as often
the larger as the smaller.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random
from decimal import Decimal

from cj2.data.tasks.answers import check_quantity
from cj2.data.tasks.base import Family, Phrasing, Problem, fmt_eq, fmt_num

# (from, to, operation, factor, plausible wrong factors). Seconds to minutes is left out: dividing by 100
# instead of 60 changes which digit the answer ends in, a surface cue.
_CONVERSIONS: dict[str, tuple[str, str, str, int, tuple[int, ...]]] = {
    "km>m": ("km", "m", "*", 1000, (100,)),
    "m>cm": ("m", "cm", "*", 100, (1000, 10)),
    "cm>mm": ("cm", "mm", "*", 10, (100,)),
    "kg>g": ("kg", "g", "*", 1000, (100,)),
    "L>mL": ("L", "mL", "*", 1000, (100,)),
    "h>min": ("h", "min", "*", 60, (100,)),
    "min>s": ("min", "s", "*", 60, (100,)),
    "m>km": ("m", "km", "/", 1000, (100,)),
    "cm>m": ("cm", "m", "/", 100, (1000, 10)),
    "mm>cm": ("mm", "cm", "/", 10, (100,)),
    "g>kg": ("g", "kg", "/", 1000, (100,)),
    "mL>L": ("mL", "L", "/", 1000, (100,)),
}


def _wrong_is_larger(op: str, factor: int, wrong_factor: int) -> bool:
    return wrong_factor > factor if op == "*" else wrong_factor < factor


def _conversion_value(rng: random.Random, op: str, factor: int) -> Decimal:
    if factor == 60:  # quarter hours / minutes
        return Decimal(rng.randint(1, 40)) / 4
    if op == "*":
        # Whole numbers, or one decimal place for the factor-1000 units, so that a factor mistake does
        # not change which digit the answer ends in.
        if factor == 1000 and rng.random() < 0.5:
            return Decimal(rng.randint(11, 199)) / 10
        return Decimal(rng.randint(2, 95))
    if factor == 10:
        return Decimal(rng.randint(12, 199))
    return Decimal(10 * rng.randint(2, 95))


def _make_unit_conversion(rng: random.Random, key: str | None) -> Problem:
    kind = rng.choice(["unit_factor", "decimal_shift"])
    larger = rng.random() < 0.5  # whether the wrong answer is the larger number: balanced
    if key is None:
        # For a factor mistake the conversion decides the direction, so pick one that errs the drawn way.
        key = rng.choice(
            [
                k
                for k, (_, _, op, f, wfs) in _CONVERSIONS.items()
                if kind == "decimal_shift" or any(_wrong_is_larger(op, f, w) == larger for w in wfs)
            ]
        )
    fu, tu, op, factor, wrong_factors = _CONVERSIONS[key]
    v = _conversion_value(rng, op, factor)
    if kind == "decimal_shift" and not larger:
        # The pair {T, 10 T} either way round: a tenth-too-small answer to a ten-times-larger quantity, so
        # trailing zeros say nothing about which answer is right.
        v *= 10
    apply = (lambda f: v * f) if op == "*" else (lambda f: v / f)
    truth = apply(factor)
    fact = (lambda f: f"1 {fu} = {f} {tu}") if op == "*" else (lambda f: f"1 {tu} = {f} {fu}")
    work = [fact(factor), fmt_eq(v, op, factor, truth)]
    if kind == "unit_factor":
        fitting = [w for w in wrong_factors if _wrong_is_larger(op, factor, w) == larger]
        wf = rng.choice(fitting or list(wrong_factors))
        wrong = apply(wf)
        wrong_work = [fact(wf), fmt_eq(v, op, wf, wrong)]
        wrong_step, hint = wrong_work[0], f"it uses {wf} instead of {factor}"
    else:
        wrong = truth * 10 if larger else truth / 10
        wrong_work = [fact(factor), fmt_eq(v, op, factor, wrong)]
        wrong_step, hint = wrong_work[1], "it misplaces the decimal point"
    slip_step = fact(wrong_factors[0])
    return Problem(
        subtask=key,
        fields={"v": fmt_num(v), "fu": fu, "tu": tu},
        truth=f"{fmt_num(truth)} {tu}",
        wrong=f"{fmt_num(wrong)} {tu}",
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=[slip_step, work[1]],
        wrong_step=wrong_step,
        slip_step=slip_step,
        demand=f"{fmt_num(v)} {fu} expressed in {tu}",
        hint=hint,
        params={"value": fmt_num(v), "from": fu, "to": tu},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "unit_conversion",
        "metric and time unit conversions",
        tuple(_CONVERSIONS),
        _make_unit_conversion,
        (
            Phrasing("unit-convert", "train", "Convert {v} {fu} to {tu}."),
            Phrasing("unit-howmany", "train", "How many {tu} are in {v} {fu}?"),
            Phrasing("unit-express", "test", "Express {v} {fu} in {tu}."),
            Phrasing("unit-equals", "test", "{v} {fu} is equal to how many {tu}?"),
        ),
        check=check_quantity,
    ),
)
