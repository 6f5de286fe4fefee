"""Hard tier: multi-step integer arithmetic (``x * y + z``, ``(x + y) * z``, ...).

Wrong answers: a dropped or doubled carry, a borrow mistake, a product one group off, an off-by-one,
and (where the form is drawn at random) operator precedence or ignored brackets.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from cj2.data.tasks.answers import check_number
from cj2.data.tasks.base import OPS, Family, Phrasing, Problem, fmt_eq, random_sign

_ARITH_FORMS = ("x*y+z", "x+y*z", "x*y-z", "(x+y)*z")


def _arith_params(rng: random.Random, form: str, small: int | None = None) -> tuple[int, int, int]:
    """Operands of ``form``; ``small`` fixes the one-digit factor. ``x + y * z`` and ``(x + y) * z`` draw
    from the same ranges, so a precedence mistake is as likely to go up as down."""
    small = rng.randint(3, 9) if small is None else small
    if form == "x*y+z":
        return rng.randint(12, 49), small, rng.randint(11, 99)
    if form == "x*y-z":
        x = rng.randint(12, 49)
        return x, small, rng.randint(11, min(99, x * 3 - 11))
    return rng.randint(11, 49), rng.randint(12, 49), small  # x+y*z and (x+y)*z


def _arith_steps(form: str, x: int, y: int, z: int) -> list[tuple[int | None, str, int | None]]:
    """The operations in the right order, each as ``(a, op, b)``; ``None`` is the previous result."""
    return {
        "x*y+z": [(x, "*", y), (None, "+", z)],
        "x+y*z": [(y, "*", z), (x, "+", None)],
        "x*y-z": [(x, "*", y), (None, "-", z)],
        "(x+y)*z": [(x, "+", y), (None, "*", z)],
    }[form]


def _run_steps(
    steps, corrupt: dict[int, Callable[[int, int, int], int]] | None = None
) -> tuple[list[str], int, list[tuple[int, int, int]]]:
    """Evaluate ``steps`` left to right; ``corrupt[i]`` replaces step i's result (a slip propagates).
    Returns the written lines, the final value and each step's ``(a, b, result)``."""
    lines, prev, done = [], 0, []
    for i, (a, op, b) in enumerate(steps):
        a = prev if a is None else a
        b = prev if b is None else b
        r = OPS[op](a, b)
        if corrupt and i in corrupt:
            r = corrupt[i](a, b, r)
        lines.append(fmt_eq(a, op, b, r))
        done.append((a, b, r))
        prev = r
    return lines, prev, done


def _make_arithmetic(rng: random.Random, form: str | None) -> Problem:
    # A precedence mistake only where the form is drawn at random: a phrasing bound to one form would
    # make it err in one direction only (a magnitude cue).
    fixed = form is not None
    form = form or rng.choice(_ARITH_FORMS)
    kinds = ["carry", "multiplication_slip", "off_by_one"]
    if not fixed and form in ("x+y*z", "(x+y)*z"):
        kinds.append("precedence")
    kind = rng.choice(kinds)
    small_wrong = None
    if kind == "multiplication_slip":
        # Draw the pair {k, k+1} first, then which one is right: a product one group off either way,
        # with right and wrong answers exchangeable.
        lo = rng.randint(3, 8)
        small, small_wrong = (lo, lo + 1) if rng.random() < 0.5 else (lo + 1, lo)
        x, y, z = _arith_params(rng, form, small)
    else:
        x, y, z = _arith_params(rng, form)
    steps = _arith_steps(form, x, y, z)
    work, truth, done = _run_steps(steps)
    expr = {
        "x*y+z": f"{x} * {y} + {z}",
        "x+y*z": f"{x} + {y} * {z}",
        "x*y-z": f"{x} * {y} - {z}",
        "(x+y)*z": f"({x} + {y}) * {z}",
    }[form]
    if kind == "precedence":
        # x + y * z read left to right, or (x + y) * z with the brackets ignored.
        wrong_steps = [(x, "+", y), (None, "*", z)] if form == "x+y*z" else [(y, "*", z), (x, "+", None)]
        wrong_work, wrong, _ = _run_steps(wrong_steps)
        wrong_step = wrong_work[0]
        hint = "it ignores the order of operations" if form == "x+y*z" else "it ignores the brackets"
    elif kind == "carry":
        i = next(k for k, (_, op, _) in enumerate(steps) if op in "+-")
        a_i, b_i, _ = done[i]
        delta = 10 * random_sign(rng)
        if steps[i][1] == "+":
            carried = a_i % 10 + b_i % 10 >= 10
            hint = {
                (True, -1): "it drops a carry",
                (True, 1): "it carries twice",
                (False, -1): "it loses ten in the addition",
                (False, 1): "it adds a carry where none is due",
            }
        else:
            carried = a_i % 10 < b_i % 10
            hint = {
                (True, -1): "it borrows twice",
                (True, 1): "it forgets to borrow",
                (False, -1): "it borrows where no borrow is due",
                (False, 1): "it gains ten in the subtraction",
            }
        hint = hint[(carried, delta // 10)]
        wrong_work, wrong, _ = _run_steps(steps, {i: lambda a, b, r: r + delta})
        wrong_step = wrong_work[i]
    elif kind == "multiplication_slip":
        i = next(k for k, (_, op, _) in enumerate(steps) if op == "*")
        wrong_work, wrong, _ = _run_steps(steps, {i: lambda a, b, r: r // min(a, b) * small_wrong})
        wrong_step = wrong_work[i]
        hint = "it miscomputes the product"
    else:
        # Off by one in the (last) addition or subtraction. Not in a final product: right answers there are
        # multiples of the factor and wrong ones would not be, a last-digit cue.
        i = max(k for k, (_, op, _) in enumerate(steps) if op in "+-")
        s = random_sign(rng)
        wrong_work, wrong, _ = _run_steps(steps, {i: lambda a, b, r: r + s})
        wrong_step = wrong_work[i]
        hint = "its addition is off by one" if steps[i][1] == "+" else "its subtraction is off by one"
    # A slip: the first result written wrong, the next step carried on from the right value.
    d = rng.choice([1, 2, 3, 4, 6, 7, 8, 9])
    slip_first, _, _ = _run_steps(steps[:1], {0: lambda a, b, r: r + random_sign(rng) * d})
    slip_work = [slip_first[0], *work[1:]]
    return Problem(
        subtask=form,
        fields={"expr": expr, "x": x, "y": y, "z": z},
        truth=str(truth),
        wrong=str(wrong),
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=slip_work,
        wrong_step=wrong_step,
        slip_step=slip_first[0],
        demand=f"the exact value of {expr}",
        hint=hint,
        params={"form": form, "x": x, "y": y, "z": z},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "arithmetic",
        "multi-step integer arithmetic",
        _ARITH_FORMS,
        _make_arithmetic,
        (
            Phrasing("arith-what", "train", "What is {expr}?"),
            Phrasing("arith-compute", "train", "Compute {expr}."),
            Phrasing(
                "arith-pens",
                "train",
                "A shop has {y} boxes with {x} pens in each, plus {z} loose pens. How many pens are there?",
                "x*y+z",
            ),
            Phrasing("arith-evaluate", "validation", "Evaluate {expr} and give the exact result."),
            Phrasing(
                "arith-shelves",
                "validation",
                "Each of {y} shelves holds {x} books, and then {z} books are "
                "taken away. How many books are left?",
                "x*y-z",
            ),
            Phrasing("arith-find", "test", "Find the value of {expr}."),
            Phrasing(
                "arith-badges",
                "test",
                "A team has {x} senior and {y} junior members, and every member "
                "needs {z} badges. How many badges are needed?",
                "(x+y)*z",
            ),
        ),
        check=check_number,
    ),
)
