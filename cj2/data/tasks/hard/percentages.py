"""Hard tier: a percentage of a number, increases, decreases, and what percent one number is of another.

Wrong answers: the rate's decimal point misplaced (ten times off, either way round) or the sign of the
change reversed.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random
from decimal import Decimal

from cj2.data.tasks.answers import check_quantity
from cj2.data.tasks.base import Family, Phrasing, Problem, fmt_eq, fmt_num


def _make_percentages(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("of", "increase", "decrease", "what_percent"))
    # Each subtask draws the right and the wrong value as an exchangeable pair (counting._exchangeable_pair):
    # a rate ten times off in one direction is matched by a question where the other value is right.
    ten_up = rng.random() < 0.5  # the wrong value is ten times the right one (else a tenth of it)
    if subtask == "of":
        p = rng.choice([5, 8, 12, 15, 20, 25, 30, 35, 40, 45, 55, 60, 65, 70, 75, 80, 85, 90, 95])
        n = 20 * rng.randint(2, 40) * (1 if ten_up else 10)
        rate = Decimal(p) / 100
        truth = rate * n
        wrong_rate = rate * 10 if ten_up else rate / 10
        work = [f"{p}% = {fmt_num(rate)}", fmt_eq(rate, "*", n, truth)]
        wrong_work = [f"{p}% = {fmt_num(wrong_rate)}", fmt_eq(wrong_rate, "*", n, wrong_rate * n)]
        slip_step = f"{p}% = {fmt_num(rate / 10 if ten_up else rate * 10)}"
        return Problem(
            subtask=subtask,
            fields={"p": p, "N": n},
            truth=fmt_num(truth),
            wrong=fmt_num(wrong_rate * n),
            error_kind="decimal_place",
            work=work,
            wrong_work=wrong_work,
            slip_work=[slip_step, work[1]],
            wrong_step=wrong_work[0],
            slip_step=slip_step,
            demand=f"{p}% of {n}",
            hint="it misplaces the decimal point of the rate",
            params={"subtask": subtask, "p": p, "N": n},
        )
    if subtask in ("increase", "decrease"):
        # The sign mistake: an increase answered as a decrease and the other way round.
        p = rng.choice([5, 10, 15, 20, 25, 30, 40, 50])
        n = 20 * rng.randint(2, 20)
        inc = Decimal(p * n) / 100
        op, wrong_op = ("+", "-") if subtask == "increase" else ("-", "+")
        truth, wrong = (n + inc, n - inc) if op == "+" else (n - inc, n + inc)
        work = [f"{p}% of {n} = {fmt_num(inc)}", fmt_eq(n, op, inc, truth)]
        wrong_work = [work[0], fmt_eq(n, wrong_op, inc, wrong)]
        slip_step = f"{p}% of {n} = {fmt_num(inc + rng.choice([-2, -1, 1, 2]))}"
        what = "rise" if subtask == "increase" else "cut"
        return Problem(
            subtask=subtask,
            fields={"p": p, "N": n},
            truth=fmt_num(truth),
            wrong=fmt_num(wrong),
            error_kind="sign",
            work=work,
            wrong_work=wrong_work,
            slip_work=[slip_step, work[1]],
            wrong_step=wrong_work[1],
            slip_step=slip_step,
            demand=f"the price after a {p}% {what} from {n}",
            hint="it adds the change instead of subtracting it"
            if subtask == "decrease"
            else "it subtracts the change instead of adding it",
            params={"subtask": subtask, "p": p, "N": n},
        )
    # what_percent: the right and wrong percentages are k% and 10k%, either way round.
    k = rng.randint(1, 9)
    pct, wrong_pct = (k, 10 * k) if ten_up else (10 * k, k)
    n = 100 * rng.randint(1, 5)
    x = pct * n // 100
    frac = Decimal(x) / n
    mult = 1000 if ten_up else 10
    work = [fmt_eq(x, "/", n, frac), f"{fmt_num(frac)} * 100 = {pct}%"]
    wrong_work = [work[0], f"{fmt_num(frac)} * {mult} = {wrong_pct}%"]
    slip_step = fmt_eq(x, "/", n, frac / 10 if ten_up else frac * 10)
    return Problem(
        subtask=subtask,
        fields={"x": x, "N": n},
        truth=f"{pct}%",
        wrong=f"{wrong_pct}%",
        error_kind="decimal_place",
        work=work,
        wrong_work=wrong_work,
        slip_work=[slip_step, work[1]],
        wrong_step=wrong_work[1],
        slip_step=slip_step,
        demand=f"{x} as a percentage of {n}",
        hint=f"it multiplies by {mult} instead of 100",
        params={"subtask": subtask, "x": x, "N": n},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "percentages",
        "percentages of, increases, decreases and ratios",
        ("of", "increase", "decrease", "what_percent"),
        _make_percentages,
        (
            Phrasing("pct-of", "validation", "What is {p}% of {N}?", "of"),
            Phrasing("pct-find", "validation", "Find {p} percent of {N}.", "of"),
            Phrasing(
                "pct-increase",
                "validation",
                "A price of {N} dollars goes up by {p}%. What is the new price in dollars?",
                "increase",
            ),
            Phrasing(
                "pct-decrease",
                "validation",
                "A jacket costing {N} dollars is reduced by {p}%. What does it cost now, in dollars?",
                "decrease",
            ),
            Phrasing("pct-ratio", "validation", "{x} is what percent of {N}?", "what_percent"),
        ),
        check=check_quantity,
    ),
)
