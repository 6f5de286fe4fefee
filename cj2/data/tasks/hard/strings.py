"""Hard tier: reversing a word, its n-th letter, and palindrome checks.

Wrong answers: two letters transposed, counting from zero or skipping a number, a misread pair.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_text
from cj2.data.tasks.base import Family, Phrasing, Problem, ordinal, random_sign

_WORDS = (
    "planet",
    "keyboard",
    "garden",
    "window",
    "silver",
    "rocket",
    "candle",
    "bridge",
    "forest",
    "marble",
    "pencil",
    "harbor",
    "jacket",
    "lantern",
    "meadow",
    "orange",
    "pocket",
    "riddle",
    "saddle",
    "timber",
    "velvet",
    "wander",
    "yellow",
    "zipper",
    "anchor",
    "blanket",
    "cabinet",
    "dolphin",
    "feather",
    "glacier",
    "hammock",
    "journal",
    "kitchen",
    "library",
    "mustard",
    "network",
    "painter",
    "quarter",
    "rainbow",
    "sparrow",
    "thunder",
    "uniform",
    "village",
    "whisper",
    "crystal",
    "picture",
    "monster",
    "castle",
)


def _spell(word: str) -> str:
    return "-".join(word)


def _enumerate(word: str, upto: int, start: int = 1) -> str:
    return " ".join(f"{ch}({i})" for i, ch in enumerate(word[:upto], start=start))


def _make_strings(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(("reverse", "nth", "palindrome"))
    if subtask == "reverse":
        w = rng.choice(_WORDS)
        rev = w[::-1]
        i = rng.choice([k for k in range(len(rev) - 1) if rev[k] != rev[k + 1]])
        wrong = rev[:i] + rev[i + 1] + rev[i] + rev[i + 2 :]
        j = rng.randrange(len(w))
        typo = w[:j] + rng.choice([c for c in "abcdefghijklmnoprstuvwy" if c != w[j]]) + w[j + 1 :]
        work = [f"letters {_spell(w)}", f"backwards {_spell(rev)}"]
        wrong_work = [work[0], f"backwards {_spell(wrong)}"]
        return Problem(
            subtask=subtask,
            fields={"w": w},
            truth=f"'{rev}'",
            wrong=f"'{wrong}'",
            error_kind="transposed_letters",
            work=work,
            wrong_work=wrong_work,
            slip_work=[f"letters {_spell(typo)}", work[1]],
            wrong_step=wrong_work[1],
            slip_step=f"letters {_spell(typo)}",
            demand=f"'{w}' reversed",
            hint=f"it swaps '{rev[i]}' and '{rev[i + 1]}'",
            params={"subtask": subtask, "word": w},
        )
    if subtask == "nth":
        while True:
            w = rng.choice(_WORDS)
            n = rng.randint(2, min(9, len(w) - 1))
            if w[n - 1] != w[n] and w[n - 1] != w[n - 2]:
                break
        truth = w[n - 1]
        if random_sign(rng) > 0:  # counted from 0: answers the (n+1)-th letter
            wrong, kind = w[n], "zero_index"
            wrong_step, hint = _enumerate(w, n + 1, start=0), "it counts from zero"
        else:  # skipped a number while counting: answers the (n-1)-th letter
            wrong, kind = w[n - 2], "miscounted"
            wrong_step = " ".join(f"{ch}({i + (i >= n - 2)})" for i, ch in enumerate(w[: n - 1], start=1))
            hint = "it skips a number while counting"
        j = rng.randrange(n - 1)  # misread an earlier letter: the nth is still right
        typo = w[:j] + rng.choice([c for c in "abcdefghijklmnoprstuvwy" if c != w[j]]) + w[j + 1 :]
        slip = _enumerate(typo, n)
        return Problem(
            subtask=subtask,
            fields={"w": w, "n": n, "ord": ordinal(n)},
            truth=f"'{truth}'",
            wrong=f"'{wrong}'",
            error_kind=kind,
            work=[_enumerate(w, n)],
            wrong_work=[wrong_step],
            slip_work=[slip],
            wrong_step=wrong_step,
            slip_step=slip,
            demand=f"the {ordinal(n)} letter of '{w}'",
            hint=hint,
            params={"subtask": subtask, "word": w, "n": n},
        )
    # palindrome: random letters; non-palindromes differ in exactly one pair, so they look close.
    length = rng.randint(5, 7)
    half = [rng.choice("abcdeklmnoprstu") for _ in range((length + 1) // 2)]
    letters = half + half[: length // 2][::-1]
    is_pal = rng.random() < 0.5
    pairs_n = length // 2
    if not is_pal:
        k = rng.randrange(pairs_n)
        letters[length - 1 - k] = rng.choice([c for c in "abcdeklmnoprstu" if c != letters[k]])
    w = "".join(letters)

    def compare(word: str, flip: int | None = None) -> str:
        out = []
        for k in range(pairs_n):
            a, b = word[k], word[len(word) - 1 - k]
            same = (a == b) != (k == flip)
            out.append(f"{a}={b}" if same else f"{a}≠{b}")
        return "pairs " + ", ".join(out)

    truth = "yes" if is_pal else "no"
    if is_pal:
        k = rng.randrange(pairs_n)
        wrong_step, kind, hint = compare(w, flip=k), "false_mismatch", "it misreads a matching pair"
        slipped = list(w)  # misread a pair's letters, still equal: the conclusion holds
        new = rng.choice([c for c in "abcdeklmnoprstu" if c != w[k]])
        slipped[k] = slipped[length - 1 - k] = new
        slip = compare("".join(slipped))
    else:
        bad = next(k for k in range(pairs_n) if w[k] != w[length - 1 - k])
        wrong_step, kind, hint = compare(w, flip=bad), "missed_mismatch", "it misses the pair that differs"
        others = [k for k in range(pairs_n) if k != bad]
        slip = compare(w, flip=rng.choice(others)) if others else compare(w[::-1])
    verdict_line = {"yes": "all pairs match: yes", "no": "a pair differs: no"}
    wrong_value = "no" if is_pal else "yes"
    return Problem(
        subtask="palindrome",
        fields={"w": w},
        truth=truth,
        wrong=wrong_value,
        error_kind=kind,
        work=[compare(w), verdict_line[truth]],
        wrong_work=[wrong_step, verdict_line[wrong_value]],
        slip_work=[slip, verdict_line[truth]],
        wrong_step=wrong_step,
        slip_step=slip,
        demand=f"whether '{w}' is a palindrome",
        hint=hint,
        params={"subtask": "palindrome", "word": w},
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "strings",
        "reversing, indexing and palindrome checks",
        ("reverse", "nth", "palindrome"),
        _make_strings,
        (
            Phrasing("str-reverse", "train", "Reverse the string '{w}'.", "reverse"),
            Phrasing("str-nth", "train", "What is the {ord} letter of '{w}'?", "nth"),
            Phrasing("str-palindrome", "train", "Is '{w}' a palindrome? Answer yes or no.", "palindrome"),
            Phrasing("str-backwards", "test", "Write '{w}' backwards.", "reverse"),
            Phrasing("str-position", "test", "Which letter is at position {n} in '{w}'?", "nth"),
            Phrasing(
                "str-same",
                "test",
                "Does '{w}' read the same forwards and backwards? Answer yes or no.",
                "palindrome",
            ),
        ),
        check=check_text,
    ),
)
