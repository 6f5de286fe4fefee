"""Hard tier: the weekday of a date, days between two dates, and a date plus n days.

Wrong answers: a forgotten or invented leap day, a month of the wrong length, counting both ends,
stopping a day early; always across one month boundary, so the check has two steps.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import calendar
import datetime as dt
import random

from cj2.data.tasks.answers import check_date_or_text
from cj2.data.tasks.base import Family, Phrasing, Problem, fmt_eq, ordinal, random_sign

_MONTHS = tuple(calendar.month_name)[1:]
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _date_text(d: dt.date, year: bool = True) -> str:
    return f"{d.day} {_MONTHS[d.month - 1]}" + (f" {d.year}" if year else "")


def _month_days(d: dt.date) -> int:
    return calendar.monthrange(d.year, d.month)[1]


def _make_dates(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("weekday", "between", "add"))
    year = rng.randint(2019, 2026)
    if subtask == "weekday":
        d = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365))
        jan1 = dt.date(year, 1, 1)
        doy = (d - jan1).days + 1
        wd0 = _WEEKDAYS[jan1.weekday()]

        def lines(day_of_year: int, shown_doy: int | None = None) -> list[str]:
            r = (day_of_year - 1) % 7
            wd = _WEEKDAYS[(jan1.weekday() + r) % 7]
            return [
                f"1 January {year} was a {wd0}",
                f"{_date_text(d, False)} is day {shown_doy or day_of_year}",
                f"{day_of_year - 1} mod 7 = {r}, giving {wd}",
            ]

        work = lines(doy)
        leap = calendar.isleap(year)
        if d.month > 2 and rng.random() < 0.5:
            delta = -1 if leap else 1
            kind = "leap_year"
            hint = "it forgets the leap day" if leap else f"it counts a 29 February that {year} does not have"
        else:
            delta, kind, hint = random_sign(rng), "day_count", "it miscounts the days before the date"
        if doy + delta < 1:
            delta = 1
        wrong_work = lines(doy + delta)
        slip_work = lines(doy, shown_doy=doy + rng.choice([-2, -1, 1, 2]) if doy > 2 else doy + 1)
        return Problem(
            subtask=subtask,
            fields={"date": _date_text(d)},
            truth=_WEEKDAYS[d.weekday()],
            wrong=wrong_work[-1].rsplit(" ", 1)[-1],
            error_kind=kind,
            work=work,
            wrong_work=wrong_work,
            slip_work=slip_work,
            wrong_step=wrong_work[1],
            slip_step=slip_work[1],
            demand=f"the day of the week of {_date_text(d)}",
            hint=hint,
            params={"subtask": subtask, "date": d.isoformat()},
        )
    # between / add: always across one month boundary, so the check has two steps.
    # Day <= 26 leaves at least two days in the month, so a remainder one too small is still positive; an
    # end day >= 2 keeps a date one day too early inside the next month.
    d1 = dt.date(year, rng.randint(1, 11), rng.randint(1, 26))
    ml = _month_days(d1)
    rem = ml - d1.day
    month = _MONTHS[d1.month - 1]
    k = rem + rng.randint(2, 28)
    d2 = d1 + dt.timedelta(days=k)
    direction = random_sign(rng)  # the direction of the wrong answer's error, balanced

    def left(days_in_month: int, remaining: int) -> str:
        return f"{month} has {days_in_month} days, so {remaining} days are left after the {ordinal(d1.day)}"

    if subtask == "between":
        # +1 day: counting both ends, or a month one day too long; -1: a month one day too short, or
        # stopping a day early.
        if direction > 0:
            if ml in (30, 28) and rng.random() < 0.5:
                wrong_ml, wrong_rem, kind, hint = (
                    ml + 1,
                    rem + 1,
                    "month_length",
                    f"it gives {month} {ml + 1} days",
                )
            else:
                wrong_ml, wrong_rem, kind, hint = (
                    ml,
                    rem + 1,
                    "inclusive_count",
                    f"it counts the {ordinal(d1.day)} itself",
                )
        else:
            if ml in (31, 29):
                wrong_ml, wrong_rem, kind, hint = (
                    ml - 1,
                    rem - 1,
                    "month_length",
                    f"it gives {month} {ml - 1} days",
                )
            else:
                wrong_ml, wrong_rem, kind, hint = ml, rem - 1, "off_by_one", "it stops one day early"
        work = [left(ml, rem), fmt_eq(rem, "+", d2.day, k)]
        wrong = wrong_rem + d2.day
        wrong_work = [left(wrong_ml, wrong_rem), fmt_eq(wrong_rem, "+", d2.day, wrong)]
        slip_step = left(ml + (1 if ml < 31 else -1), rem)  # month length misstated, remainder right
        return Problem(
            subtask=subtask,
            fields={"d1": _date_text(d1), "d2": _date_text(d2)},
            truth=f"{k} days",
            wrong=f"{wrong} days",
            error_kind=kind,
            work=work,
            wrong_work=wrong_work,
            slip_work=[slip_step, work[1]],
            wrong_step=wrong_work[0],
            slip_step=slip_step,
            demand=f"the number of days from {_date_text(d1)} to {_date_text(d2)}",
            hint=hint,
            params={"subtask": subtask, "start": d1.isoformat(), "end": d2.isoformat()},
        )
    # add: the wrong date is one day later (remainder one too small) or earlier (one too big).
    if direction > 0:
        if ml in (31, 29):
            wrong_ml, kind, hint = ml - 1, "month_length", f"it gives {month} {ml - 1} days"
        else:
            wrong_ml, kind, hint = ml, "off_by_one", f"it loses a day at the end of {month}"
        wrong_rem = rem - 1
    else:
        if ml in (30, 28):
            wrong_ml, kind, hint = ml + 1, "month_length", f"it gives {month} {ml + 1} days"
        else:
            wrong_ml, kind, hint = ml, "inclusive_count", f"it counts the {ordinal(d1.day)} itself"
        wrong_rem = rem + 1
    wrong_date = d1 + dt.timedelta(days=k + direction)
    nxt = _MONTHS[d2.month - 1]
    work = [left(ml, rem), f"{fmt_eq(k, '-', rem, k - rem)}, giving {d2.day} {nxt}"]
    wrong_work = [
        left(wrong_ml, wrong_rem),
        f"{fmt_eq(k, '-', wrong_rem, k - wrong_rem)}, giving {wrong_date.day} "
        f"{_MONTHS[wrong_date.month - 1]}",
    ]
    slip_step = left(ml + (1 if ml < 31 else -1), rem)
    return Problem(
        subtask=subtask,
        fields={"d1": _date_text(d1), "k": k},
        truth=_date_text(d2),
        wrong=_date_text(wrong_date),
        error_kind=kind,
        work=work,
        wrong_work=wrong_work,
        slip_work=[slip_step, work[1]],
        wrong_step=wrong_work[0],
        slip_step=slip_step,
        demand=f"the date {k} days after {_date_text(d1)}",
        hint=hint,
        params={"subtask": subtask, "start": d1.isoformat(), "days": k},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "dates",
        "weekdays, day counts and date arithmetic",
        ("weekday", "between", "add"),
        _make_dates,
        (
            Phrasing("date-weekday", "test", "On which day of the week does {date} fall?", "weekday"),
            Phrasing("date-between", "test", "How many days after {d1} is {d2}?", "between"),
            Phrasing("date-add", "test", "What date is {k} days after {d1}?", "add"),
            Phrasing("date-add-later", "test", "Starting from {d1}, what is the date {k} days later?", "add"),
        ),
        check=check_date_or_text,
    ),
)
