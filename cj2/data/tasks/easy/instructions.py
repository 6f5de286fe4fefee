"""Easy tier: instruction-following checks a reader verifies by looking.

A required word is present, the answer is in capitals / in lower case, exactly N items, fewer than / at
least N words; the answer is the text itself (not styled), and the check says what each answer is.

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_instruction
from cj2.data.tasks.base import Family, Problem
from cj2.data.tasks.easy.base import TIER, make_phrasings, make_problem

_WORD_SENTENCES = (
    ("the sea", "The sea looks {w} and calm this morning.", "blue", "grey"),
    ("a garden", "The garden is full of {w} roses.", "red", "pink"),
    ("winter", "In winter the {w} covers the hills.", "snow", "frost"),
    ("a dog", "My dog loves to {w} in the park.", "run", "play"),
    ("breakfast", "I eat {w} with milk for breakfast.", "cereal", "oats"),
    ("the night sky", "The night sky is full of bright {w}.", "stars", "lights"),
    ("a city", "The city is {w} with people at noon.", "busy", "crowded"),
    ("a forest", "Tall {w} trees grow in the forest.", "pine", "oak"),
    ("a library", "The library is a {w} place to read.", "quiet", "calm"),
    ("the beach", "We walked on the warm {w} of the beach.", "sand", "shore"),
    ("a train", "The train {w} into the station on time.", "arrived", "rolled"),
    ("rain", "The rain made the street {w} and shiny.", "wet", "dark"),
    ("a birthday", "We ate {w} cake at the birthday party.", "chocolate", "lemon"),
    ("autumn", "In autumn the {w} turn orange.", "leaves", "trees"),
)

# (question, answer sentence)
_CASE_QUESTIONS = (
    ("What color is the sky on a clear day?", "The sky is blue."),
    ("What animal says moo?", "A cow says moo."),
    ("What do bees make?", "Bees make honey."),
    ("Where does the sun rise?", "The sun rises in the east."),
    ("What do you use to write on paper?", "You use a pen."),
    ("What season comes after spring?", "Summer comes after spring."),
    ("What do fish live in?", "Fish live in water."),
    ("What fruit is yellow and curved?", "A banana is yellow and curved."),
    ("What do you wear on your feet?", "You wear shoes."),
    ("What is the opposite of up?", "The opposite of up is down."),
    ("What do cows drink?", "Cows drink water."),
    ("What shape is a wheel?", "A wheel is round."),
)

_LISTS = {
    "fruits": ("apple", "banana", "cherry", "grape", "mango", "pear", "plum", "orange", "peach"),
    "colors": ("red", "blue", "green", "yellow", "purple", "black", "white", "pink", "brown"),
    "animals": ("cat", "dog", "horse", "lion", "tiger", "rabbit", "sheep", "zebra", "bear"),
    "vegetables": ("carrot", "potato", "onion", "pea", "bean", "leek", "cabbage", "pepper", "corn"),
    "sports": ("tennis", "soccer", "golf", "rugby", "hockey", "cricket", "boxing", "rowing", "skiing"),
    "tools": ("hammer", "saw", "drill", "wrench", "shovel", "rake", "chisel", "file", "axe"),
}

_DESCRIPTIONS = {
    "a cat": "A cat is a small soft pet that likes to sleep in the warm sun and chase little toys all day",
    "the ocean": "The ocean is a huge body of salty water that covers most of the planet and holds many fish",
    "a bicycle": "A bicycle is a light machine with two wheels that people ride to work or school every day",
    "a tree": "A tree is a tall plant with a strong trunk and green leaves that gives us shade and fresh air",
    "a city": "A city is a big busy place full of people and cars and shops and tall buildings and parks",
    "the moon": "The moon is a round grey rock that circles the Earth and shines at night in the dark sky",
    "a kitchen": (
        "A kitchen is a room in a home where people cook food and wash dishes and eat meals together"
    ),
    "rain": (
        "Rain is water that falls from grey clouds and helps plants grow in fields and gardens everywhere"
    ),
    "a teacher": "A teacher is a person who helps students learn new things at school and answers questions",
    "a river": "A river is a long stream of fresh water that flows downhill from the hills to the sea",
}


def _words(n: int, text: str) -> str:
    return " ".join(text.split()[:n]) + "."


def _make_instructions(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["word", "upper", "lower", "count", "fewer", "at_least"])
    if subtask == "word":
        topic, sent, word, alt = rng.choice(_WORD_SENTENCES)
        fields = {"instruction": f"Write one sentence about {topic} that uses the word '{word}'."}
        truth, wrong = sent.format(w=word), sent.format(w=alt)
        tv, wv = f"a sentence with '{word}'", f"a sentence without '{word}'"
        work, wwork = f"the word '{word}' is required", f"the word '{alt}' is required"
        key = f"word|{topic}"
    elif subtask in ("upper", "lower"):
        q, ans = rng.choice(_CASE_QUESTIONS)
        case = "capital letters" if subtask == "upper" else "lowercase letters"
        fields = {"instruction": f"Answer using only {case}: {q}"}
        if subtask == "upper":
            truth, wrong = ans.upper(), ans
            tv, wv = "all capital letters", "mixed case"
        else:
            truth, wrong = ans.lower(), (ans.upper() if rng.random() < 0.5 else ans)
            tv, wv = "all lowercase letters", "some capital letters"
        work, wwork = f"only {case} are allowed", "any letters are allowed"
        key = f"{subtask}|{q}"
    elif subtask == "count":
        cat = rng.choice(sorted(_LISTS))
        n = rng.randint(2, 5)
        delta = rng.choice([-1, 1])
        pool = rng.sample(_LISTS[cat], n + 1)
        fields = {"instruction": f"List exactly {n} {cat}, separated by commas."}
        truth, wrong = ", ".join(pool[:n]), ", ".join(pool[: n + delta])
        tv, wv = f"{n} items", f"{n + delta} items"
        work, wwork = f"exactly {n} items are asked for", f"exactly {n + delta} items are asked for"
        key = f"count|{cat}|{n}"
    else:  # fewer than n words / at least n words: the right answer is as often the shorter as the longer
        topic = rng.choice(sorted(_DESCRIPTIONS))
        n = rng.randint(5, 9)
        short, long_ = rng.randint(max(3, n - 3), n - 1), rng.randint(n, n + 3)
        if subtask == "fewer":
            fields = {"instruction": f"Describe {topic} in fewer than {n} words."}
            k_right, k_wrong = short, long_
            work, wwork = f"fewer than {n} words are allowed", f"fewer than {long_ + 1} words are allowed"
        else:
            fields = {"instruction": f"Describe {topic} in at least {n} words."}
            k_right, k_wrong = long_, short
            work, wwork = f"at least {n} words are needed", f"at least {short} words are needed"
        truth, wrong = _words(k_right, _DESCRIPTIONS[topic]), _words(k_wrong, _DESCRIPTIONS[topic])
        tv, wv = f"{k_right} words", f"{k_wrong} words"
        key = f"{subtask}|{topic}|{n}"
    return make_problem(
        subtask,
        fields,
        truth,
        wrong,
        f"instruction_{subtask}",
        work,
        wwork,
        "an answer that follows the instruction",
        "it does not follow the instruction",
        key,
        {"instruction": fields["instruction"]},
        truth_view=tv,
        wrong_view=wv,
        styled=False,
    )


FAMILIES: tuple[Family, ...] = (
    Family(
        "instructions",
        "instruction-following checks verified by looking",
        ("word", "upper", "lower", "count", "fewer", "at_least"),
        _make_instructions,
        make_phrasings(
            "ins",
            [
                ("train", "{instruction}"),
                ("train", "Follow this instruction. {instruction}"),
                ("train", "Task: {instruction}"),
                ("validation", "Instruction: {instruction}"),
                ("validation", "Please do the following. {instruction}"),
                ("test", "Your task: {instruction}"),
                ("test", "Do exactly this: {instruction}"),
            ],
        ),
        tier=TIER,
        key_splits=True,
        check=check_instruction,
    ),
)
