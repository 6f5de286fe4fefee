"""The easy tier of the built-in verifiable tasks: questions within a small model's reach.

The hard tier (:mod:`cj2.data.tasks`: multi-step arithmetic, unit conversion, dates, percentages, ...) is
beyond what a 135M model can check, so a judge trained on it at CPU scale learns the output format and
nothing else. The families here are questions whose truth a small instruct model already holds or can
read off the prompt, so that the embedded scale measures judging, the way a small corpus lets one study a
training recipe on a laptop:

* ``small_arithmetic``: a sum or difference of two numbers below 20;
* ``compare``: which of two numbers is larger (or smaller);
* ``capitals``, ``antonyms``, ``plurals``, ``science``: facts looked up from tables in this module;
* ``instructions``: instruction-following checks a reader verifies by looking (a required word is
  present, the answer is in capitals / in lower case, exactly N items, fewer than / at least N words);
* ``reading``: a fact read from a short passage (the wrong answer is a distractor from the same passage);
* held out whole: ``first_letter`` (validation only) and ``next_in_sequence`` (test only), to measure
  transfer to a family the judge never trained on.

Truth is computed or looked up; wrong answers are realistic (an off-by-one sum, the larger city for the
capital, a synonym for the antonym, a regularised plural, a neighbouring fact, a miscounted list) and
give nothing away on the surface: offsets are symmetric, "larger"/"smaller" and "fewer"/"at least" are
drawn with equal odds, and both answers are written in the same styles. Every fact and every question of
a shared family belongs to exactly one split (:func:`key_split`, a hash of the fact's key), so no
question of validation or test appears in train, whatever the phrasing.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from cj2.data.tasks import Family, Phrasing, Problem

TIER = "easy"

# Share of the keys of a shared family that each split owns (train, validation, test).
_KEY_SHARES = (0.7, 0.85)


def _hash01(family: str, key: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{family}|{key}".encode()).digest()[:8], "big") / 2**64


def _table_splits(family: str, keys: Sequence[str]) -> dict[str, str]:
    """Exact shares for a small table: the keys ranked by hash, the first 70 % to train, then validation,
    then test (at least one key each), so no split of a small table comes out empty by chance."""
    ranked = sorted(dict.fromkeys(keys), key=lambda k: _hash01(family, k))
    n = len(ranked)
    n_val = n_test = max(1, round(0.15 * n))
    n_train = n - n_val - n_test
    return {
        k: "train" if i < n_train else "validation" if i < n_train + n_val else "test"
        for i, k in enumerate(ranked)
    }


_TABLE_SPLITS: dict[str, dict[str, str]] = {}  # filled below, once the tables are defined


def key_split(family: str, key: str) -> str:
    """The split that owns question ``key`` of ``family``: for a fact table an exact 70/15/15 partition
    of its rows, otherwise a stable hash of the key (70 % train, 15 % validation, 15 % test)."""
    table = _TABLE_SPLITS.get(family)
    if table is not None:
        if key not in table:
            raise KeyError(f"{family}: {key!r} is not a row of its table")
        return table[key]
    h = _hash01(family, key)
    return "train" if h < _KEY_SHARES[0] else "validation" if h < _KEY_SHARES[1] else "test"


def _problem(
    subtask: str,
    fields: dict,
    truth: str,
    wrong: str,
    kind: str,
    work: str,
    wrong_work: str,
    demand: str,
    hint: str,
    key: str,
    params: dict,
    *,
    truth_view: str | None = None,
    wrong_view: str | None = None,
    styled: bool = True,
) -> Problem:
    """A one-step problem: the check states the truth (``work``); the wrong answer's check states the
    wrong fact; a flawed check that still lands on the truth adds a mistaken second look."""
    view = wrong_view if wrong_view is not None else wrong
    slip = f"{view} would also fit"
    return Problem(
        subtask=subtask,
        fields=fields,
        truth=truth,
        wrong=wrong,
        error_kind=kind,
        work=[work],
        wrong_work=[wrong_work],
        slip_work=[work, slip],
        wrong_step=wrong_work,
        slip_step=slip,
        demand=demand,
        hint=hint,
        params={**params, "subtask": subtask, "key": key},
        truth_view=truth_view,
        wrong_view=wrong_view,
        styled=styled,
    )


# ----------------------------------------------------------------- small arithmetic and comparisons


def _make_small_arithmetic(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["add", "sub"])
    if subtask == "add":
        a, b = rng.randint(2, 19), rng.randint(2, 19)
    else:  # a difference of at least 3, so that an offset of -2 stays positive
        b = rng.randint(2, 16)
        a = b + rng.randint(3, 19 - b)
    op = "+" if subtask == "add" else "-"
    truth = a + b if subtask == "add" else a - b
    delta = rng.choice([-2, -1, 1, 2])  # symmetric: the wrong value is as often above as below
    wrong = truth + delta
    kind = "off_by_one" if abs(delta) == 1 else "off_by_two"
    return _problem(
        subtask,
        {"a": a, "b": b, "op": op, "expr": f"{a} {op} {b}"},
        str(truth),
        str(wrong),
        kind,
        f"{a} {op} {b} = {truth}",
        f"{a} {op} {b} = {wrong}",
        f"{a} {op} {b}",
        f"it is off by {abs(delta)}",
        f"{subtask}|{a}|{b}",
        {"a": a, "b": b},
    )


def _make_compare(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["larger", "smaller"])
    x, y = rng.sample(range(2, 100), 2)
    hi, lo = max(x, y), min(x, y)
    truth, wrong = (hi, lo) if subtask == "larger" else (lo, hi)
    rel = "larger" if subtask == "larger" else "smaller"
    return _problem(
        subtask,
        {"x": x, "y": y, "which": rel},
        str(truth),
        str(wrong),
        "reversed_comparison",
        f"{truth} is {rel} than {wrong}",
        f"{wrong} is {rel} than {truth}",
        f"the {rel} of {x} and {y}",
        f"it picks the {'smaller' if rel == 'larger' else 'larger'} number",
        f"{subtask}|{min(x, y)}|{max(x, y)}",
        {"x": x, "y": y},
    )


# ----------------------------------------------------------------------------------- fact tables

# (country, capital, a larger or better-known city of the same country)
CAPITALS: tuple[tuple[str, str, str], ...] = (
    ("France", "Paris", "Lyon"),
    ("Germany", "Berlin", "Munich"),
    ("Italy", "Rome", "Milan"),
    ("Spain", "Madrid", "Barcelona"),
    ("Japan", "Tokyo", "Osaka"),
    ("China", "Beijing", "Shanghai"),
    ("India", "New Delhi", "Mumbai"),
    ("Russia", "Moscow", "Saint Petersburg"),
    ("Canada", "Ottawa", "Toronto"),
    ("Australia", "Canberra", "Sydney"),
    ("Brazil", "Brasilia", "Rio de Janeiro"),
    ("Egypt", "Cairo", "Alexandria"),
    ("Turkey", "Ankara", "Istanbul"),
    ("the United Kingdom", "London", "Manchester"),
    ("the United States", "Washington, D.C.", "New York"),
    ("Mexico", "Mexico City", "Guadalajara"),
    ("Argentina", "Buenos Aires", "Cordoba"),
    ("Portugal", "Lisbon", "Porto"),
    ("Greece", "Athens", "Thessaloniki"),
    ("the Netherlands", "Amsterdam", "Rotterdam"),
    ("Switzerland", "Bern", "Zurich"),
    ("Poland", "Warsaw", "Krakow"),
    ("Sweden", "Stockholm", "Gothenburg"),
    ("Norway", "Oslo", "Bergen"),
    ("Ireland", "Dublin", "Cork"),
    ("South Korea", "Seoul", "Busan"),
    ("Kenya", "Nairobi", "Mombasa"),
    ("Nigeria", "Abuja", "Lagos"),
    ("Morocco", "Rabat", "Casablanca"),
    ("Vietnam", "Hanoi", "Ho Chi Minh City"),
    ("Thailand", "Bangkok", "Chiang Mai"),
    ("Austria", "Vienna", "Salzburg"),
    ("Belgium", "Brussels", "Antwerp"),
    ("Denmark", "Copenhagen", "Aarhus"),
    ("Finland", "Helsinki", "Tampere"),
    ("Peru", "Lima", "Cusco"),
    ("Chile", "Santiago", "Valparaiso"),
    ("Colombia", "Bogota", "Medellin"),
    ("Cuba", "Havana", "Santiago de Cuba"),
    ("Iran", "Tehran", "Isfahan"),
    ("Pakistan", "Islamabad", "Karachi"),
    ("New Zealand", "Wellington", "Auckland"),
    ("Scotland", "Edinburgh", "Glasgow"),
    ("Hungary", "Budapest", "Debrecen"),
)

# (word, antonym, a near-synonym of word, a near-synonym of antonym): asked in both directions; the wrong
# answer is the synonym of the word asked about (a realistic confusion of "opposite" with "similar").
ANTONYMS: tuple[tuple[str, str, str, str], ...] = (
    ("hot", "cold", "warm", "cool"),
    ("big", "small", "large", "tiny"),
    ("fast", "slow", "quick", "sluggish"),
    ("happy", "sad", "glad", "unhappy"),
    ("up", "down", "above", "below"),
    ("tall", "short", "high", "low"),
    ("early", "late", "soon", "delayed"),
    ("full", "empty", "filled", "bare"),
    ("wet", "dry", "damp", "arid"),
    ("rich", "poor", "wealthy", "needy"),
    ("strong", "weak", "powerful", "feeble"),
    ("loud", "quiet", "noisy", "silent"),
    ("thick", "thin", "wide", "narrow"),
    ("clean", "dirty", "tidy", "messy"),
    ("push", "pull", "shove", "drag"),
    ("win", "lose", "succeed", "fail"),
    ("love", "hate", "adore", "loathe"),
    ("true", "false", "correct", "wrong"),
    ("first", "last", "earliest", "final"),
    ("inside", "outside", "within", "beyond"),
    ("day", "night", "daytime", "evening"),
    ("north", "south", "northern", "southern"),
    ("black", "white", "dark", "pale"),
    ("buy", "sell", "purchase", "trade"),
    ("give", "take", "offer", "grab"),
    ("always", "never", "forever", "rarely"),
    ("begin", "end", "start", "finish"),
    ("friend", "enemy", "pal", "foe"),
    ("asleep", "awake", "sleeping", "alert"),
    ("alive", "dead", "living", "lifeless"),
    ("open", "closed", "unlocked", "shut"),
    ("young", "old", "youthful", "aged"),
)

# (singular, plural, regularised plural, double plural)
PLURALS: tuple[tuple[str, str, str, str], ...] = (
    ("mouse", "mice", "mouses", "mices"),
    ("child", "children", "childs", "childrens"),
    ("foot", "feet", "foots", "feets"),
    ("tooth", "teeth", "tooths", "teeths"),
    ("goose", "geese", "gooses", "geeses"),
    ("man", "men", "mans", "mens"),
    ("woman", "women", "womans", "womens"),
    ("box", "boxes", "boxs", "boxeses"),
    ("bus", "buses", "buss", "buseses"),
    ("baby", "babies", "babys", "babieses"),
    ("city", "cities", "citys", "cityes"),
    ("knife", "knives", "knifes", "knive"),
    ("leaf", "leaves", "leafs", "leave"),
    ("wolf", "wolves", "wolfs", "wolve"),
    ("potato", "potatoes", "potatos", "potatoeses"),
    ("tomato", "tomatoes", "tomatos", "tomatoeses"),
    ("sheep", "sheep", "sheeps", "sheepes"),
    ("deer", "deer", "deers", "deeres"),
    ("glass", "glasses", "glasss", "glassies"),
    ("dish", "dishes", "dishs", "dishies"),
    ("church", "churches", "churchs", "churchies"),
    ("story", "stories", "storys", "storieses"),
    ("party", "parties", "partys", "partieses"),
    ("half", "halves", "halfs", "halve"),
    ("life", "lives", "lifes", "live"),
    ("ox", "oxen", "oxes", "oxens"),
    ("wife", "wives", "wifes", "wive"),
    ("lady", "ladies", "ladys", "ladieses"),
    ("fox", "foxes", "foxs", "foxeses"),
    ("loaf", "loaves", "loafs", "loave"),
)

# (question, statement with {v}, truth, a realistic wrong answer)
SCIENCE: tuple[tuple[str, str, str, str], ...] = (
    ("How many legs does a spider have?", "a spider has {v} legs", "8", "6"),
    ("How many legs does an insect have?", "an insect has {v} legs", "6", "8"),
    ("How many days are in a week?", "a week has {v} days", "7", "6"),
    ("How many hours are in a day?", "a day has {v} hours", "24", "12"),
    ("How many minutes are in an hour?", "an hour has {v} minutes", "60", "100"),
    ("How many months are in a year?", "a year has {v} months", "12", "10"),
    (
        "At what temperature in degrees Celsius does water freeze?",
        "water freezes at {v} degrees Celsius",
        "0",
        "32",
    ),
    (
        "At what temperature in degrees Celsius does water boil at sea level?",
        "water boils at {v} degrees Celsius at sea level",
        "100",
        "212",
    ),
    ("Which planet is closest to the Sun?", "the planet closest to the Sun is {v}", "Mercury", "Venus"),
    ("Which planet is known as the Red Planet?", "the Red Planet is {v}", "Mars", "Jupiter"),
    ("What is the largest planet in our solar system?", "the largest planet is {v}", "Jupiter", "Saturn"),
    (
        "What gas do plants take in from the air to make food?",
        "plants take in {v}",
        "carbon dioxide",
        "oxygen",
    ),
    (
        "What gas do people need to breathe in to stay alive?",
        "people need to breathe in {v}",
        "oxygen",
        "carbon dioxide",
    ),
    ("What is the chemical formula of water?", "the formula of water is {v}", "H2O", "CO2"),
    ("What is the chemical symbol for gold?", "the symbol for gold is {v}", "Au", "Ag"),
    ("What is the chemical symbol for silver?", "the symbol for silver is {v}", "Ag", "Au"),
    ("What force pulls objects toward the ground?", "the force is {v}", "gravity", "magnetism"),
    (
        "Which organ pumps blood through the body?",
        "the organ that pumps blood is {v}",
        "the heart",
        "the lungs",
    ),
    ("Which organs do people use to breathe?", "people breathe with {v}", "the lungs", "the heart"),
    ("What is frozen water called?", "frozen water is {v}", "ice", "steam"),
    ("What is the largest animal on Earth?", "the largest animal is {v}", "the blue whale", "the elephant"),
    ("How many sides does a triangle have?", "a triangle has {v} sides", "3", "4"),
    ("How many sides does a square have?", "a square has {v} sides", "4", "3"),
    ("How many sides does a hexagon have?", "a hexagon has {v} sides", "6", "8"),
    ("How many sides does an octagon have?", "an octagon has {v} sides", "8", "6"),
    ("What color do you get by mixing blue and yellow?", "blue and yellow make {v}", "green", "purple"),
    ("What color do you get by mixing red and blue?", "red and blue make {v}", "purple", "green"),
    ("What color do you get by mixing red and yellow?", "red and yellow make {v}", "orange", "purple"),
    ("What color do you get by mixing red and white?", "red and white make {v}", "pink", "orange"),
    (
        "Which part of a plant takes in water from the soil?",
        "water is taken in by {v}",
        "the roots",
        "the leaves",
    ),
    ("Which part of a plant makes food from sunlight?", "food is made by {v}", "the leaves", "the roots"),
    ("How many planets are in our solar system?", "our solar system has {v} planets", "8", "9"),
    ("What do caterpillars turn into?", "caterpillars turn into {v}", "butterflies", "bees"),
    ("What does a thermometer measure?", "a thermometer measures {v}", "temperature", "weight"),
    (
        "Which animal is known for having a trunk?",
        "the animal with a trunk is {v}",
        "the elephant",
        "the giraffe",
    ),
    (
        "What is the closest natural satellite of Earth?",
        "Earth's natural satellite is {v}",
        "the Moon",
        "the Sun",
    ),
)


def _make_capitals(rng: random.Random, subtask: str | None) -> Problem:
    country, capital, city = rng.choice(CAPITALS)
    if rng.random() < 0.5:  # the larger city of the same country
        wrong, kind = city, "larger_city"
    else:  # another country's capital: every capital is as often a wrong answer as a right one
        wrong, kind = rng.choice([c for _, c, _ in CAPITALS if c != capital]), "other_capital"
    return _problem(
        "capital",
        {"country": country},
        capital,
        wrong,
        kind,
        f"the capital of {country} is {capital}",
        f"the capital of {country} is {wrong}",
        f"the capital of {country}",
        f"{wrong} is not the capital of {country}",
        country,
        {"country": country},
    )


def _make_antonyms(rng: random.Random, subtask: str | None) -> Problem:
    row = rng.choice(ANTONYMS)
    word, anti, syn_word, _ = row if rng.random() < 0.5 else (row[1], row[0], row[3], row[2])
    if rng.random() < 0.5:
        wrong, kind = syn_word, "synonym"
    else:  # the antonym of another word of the table
        other = rng.choice([r for r in ANTONYMS if r is not row])
        wrong, kind = rng.choice(other[:2]), "unrelated_word"
    return _problem(
        "antonym",
        {"w": word},
        anti,
        wrong,
        kind,
        f"the opposite of '{word}' is '{anti}'",
        f"the opposite of '{word}' is '{wrong}'",
        f"the opposite of '{word}'",
        f"'{wrong}' is not the opposite of '{word}'",
        "|".join(sorted(row[:2])),
        {"word": word},
    )


def _make_plurals(rng: random.Random, subtask: str | None) -> Problem:
    row = rng.choice(PLURALS)
    singular, plural = row[0], row[1]
    wrong, kind = (row[2], "regularised") if rng.random() < 0.5 else (row[3], "double_plural")
    return _problem(
        "plural",
        {"w": singular},
        plural,
        wrong,
        kind,
        f"the plural of '{singular}' is '{plural}'",
        f"the plural of '{singular}' is '{wrong}'",
        f"the plural of '{singular}'",
        f"'{wrong}' is not an English word",
        singular,
        {"word": singular},
    )


def _make_science(rng: random.Random, subtask: str | None) -> Problem:
    q, statement, truth, wrong = rng.choice(SCIENCE)
    return _problem(
        "fact",
        {"q": q},
        truth,
        wrong,
        "confused_fact",
        statement.format(v=truth),
        statement.format(v=wrong),
        q[0].lower() + q[1:].rstrip("?"),
        f"the answer is {truth}, not {wrong}",
        q,
        {"question": q},
    )


# ----------------------------------------------------------------------------------- reading

_NAMES = (
    "Tom",
    "Anna",
    "Ben",
    "Lucy",
    "Sam",
    "Mia",
    "Leo",
    "Zoe",
    "Max",
    "Ella",
    "Omar",
    "Nina",
    "Ravi",
    "Iris",
)
_OBJECTS = ("bike", "kite", "ball", "hat", "cup", "bag", "car", "book", "scarf", "lamp", "boat", "coat")
_COLORS = ("red", "blue", "green", "yellow", "black", "white", "pink", "orange", "brown", "purple")


def _make_reading(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["color", "owner", "age"])
    n1, n2 = rng.sample(_NAMES, 2)
    o1, o2, o3 = rng.sample(_OBJECTS, 3)
    c1, c2, c3 = rng.sample(_COLORS, 3)
    age1, age2 = rng.sample(range(5, 16), 2)

    def a(word: str) -> str:
        return ("an " if word[0] in "aeiou" else "a ") + word

    passage = (
        f"{n1} is {age1} years old and has {a(c1)} {o1} and {a(c2)} {o2}. "
        f"{n2} is {age2} years old and has {a(c3)} {o3}."
    )
    if subtask == "color":  # the wrong colour is the other colour of the same person, or the other person's
        truth, wrong = c1, (c2 if rng.random() < 0.5 else c3)
        q, fact = f"What color is {n1}'s {o1}?", f"{n1}'s {o1} is {{v}}"
    elif subtask == "owner":
        truth, wrong = n2, n1
        q, fact = f"Who has the {c3} {o3}?", f"the {c3} {o3} belongs to {{v}}"
    else:  # age: the other person's age
        who = rng.choice([0, 1])
        truth, wrong = (str(age1), str(age2)) if who == 0 else (str(age2), str(age1))
        q, fact = f"How old is {(n1, n2)[who]}?", f"{(n1, n2)[who]} is {{v}} years old"
    return _problem(
        subtask,
        {"passage": passage, "q": q, "q_lower": q[0].lower() + q[1:]},
        truth,
        wrong,
        "distractor_from_passage",
        "the passage says " + fact.format(v=truth),
        "the passage says " + fact.format(v=wrong),
        q[0].lower() + q[1:].rstrip("?") + " according to the passage",
        "it reads the wrong part of the passage",
        passage + " " + q,
        {"passage": passage, "question": q},
    )


# ----------------------------------------------------------------------------------- instructions

# (topic, sentence with {w}, required word, a word that fits instead)
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
    return _problem(
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


# ----------------------------------------------------------------------------------- held-out families

_LETTER_WORDS = (
    "garden",
    "planet",
    "window",
    "orange",
    "yellow",
    "basket",
    "rocket",
    "candle",
    "forest",
    "silver",
    "marble",
    "pencil",
    "turtle",
    "violin",
    "island",
    "helmet",
    "jacket",
    "kitten",
)


def _make_first_letter(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["first", "last"])
    w = rng.choice(_LETTER_WORDS)
    idx, other = (0, rng.choice([1, -1])) if subtask == "first" else (-1, rng.choice([0, -2]))
    truth, wrong = f"'{w[idx]}'", f"'{w[other]}'"
    if truth == wrong:
        wrong = f"'{w[1]}'" if w[1] != w[idx] else f"'{w[2]}'"
    where = "starts" if subtask == "first" else "ends"
    return _problem(
        subtask,
        {"w": w, "which": subtask},
        truth,
        wrong,
        "wrong_letter",
        f"'{w}' {where} with {truth}",
        f"'{w}' {where} with {wrong}",
        f"the {subtask} letter of '{w}'",
        "it takes another letter of the word",
        f"{subtask}|{w}",
        {"word": w},
    )


_SEQUENCES = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "month": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def _make_next_in_sequence(rng: random.Random, subtask: str | None) -> Problem:
    subtask = subtask or rng.choice(["day", "month", "number"])
    if subtask == "number":
        x = rng.randint(5, 98)
        truth, wrong, item = str(x + 1), str(x - 1 if rng.random() < 0.5 else x + 2), str(x)
    else:
        seq = _SEQUENCES[subtask]
        i = rng.randrange(len(seq))
        item, truth = seq[i], seq[(i + 1) % len(seq)]
        wrong = seq[(i - 1) % len(seq)] if rng.random() < 0.5 else seq[(i + 2) % len(seq)]
    return _problem(
        subtask,
        {"x": item, "kind": subtask},
        truth,
        wrong,
        "wrong_neighbour",
        f"right after {item} comes {truth}",
        f"right after {item} comes {wrong}",
        f"what comes right after {item}",
        "it takes the wrong neighbour",
        f"{subtask}|{item}",
        {"item": item},
    )


# ----------------------------------------------------------------------------------- registry

_TABLE_SPLITS.update(
    {
        "capitals": _table_splits("capitals", [c for c, _, _ in CAPITALS]),
        "antonyms": _table_splits("antonyms", ["|".join(sorted(r[:2])) for r in ANTONYMS]),
        "plurals": _table_splits("plurals", [r[0] for r in PLURALS]),
        "science": _table_splits("science", [r[0] for r in SCIENCE]),
    }
)


def _ph(family: str, splits: Sequence[tuple[str, str]]) -> tuple[Phrasing, ...]:
    return tuple(Phrasing(f"{family}-{i}", split, text) for i, (split, text) in enumerate(splits))


EASY_FAMILIES: dict[str, Family] = {
    "small_arithmetic": Family(
        "small_arithmetic",
        "sums and differences of two numbers below 20",
        ("add", "sub"),
        _make_small_arithmetic,
        _ph(
            "sa",
            [
                ("train", "What is {expr}?"),
                ("train", "Compute {expr}."),
                ("train", "How much is {expr}?"),
                ("validation", "Work out {expr}."),
                ("validation", "What does {expr} equal?"),
                ("test", "Calculate {expr}."),
                ("test", "Tell me the result of {expr}."),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    "compare": Family(
        "compare",
        "which of two numbers is larger or smaller",
        ("larger", "smaller"),
        _make_compare,
        _ph(
            "cmp",
            [
                ("train", "Which is {which}, {x} or {y}?"),
                ("train", "Of the numbers {x} and {y}, which one is {which}?"),
                ("train", "Pick the {which} number: {x} or {y}."),
                ("validation", "Between {x} and {y}, which number is {which}?"),
                ("validation", "Tell me which is {which}: {x} or {y}."),
                ("test", "Which number is {which}: {x} or {y}?"),
                ("test", "{x} or {y}: which is {which}?"),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    "capitals": Family(
        "capitals",
        "capital cities",
        ("capital",),
        _make_capitals,
        _ph(
            "cap",
            [
                ("train", "What is the capital of {country}?"),
                ("train", "Name the capital city of {country}."),
                ("train", "Which city is the capital of {country}?"),
                ("validation", "What city is {country}'s capital?"),
                ("validation", "Tell me the capital of {country}."),
                ("test", "The capital of {country} is which city?"),
                ("test", "Which city serves as the capital of {country}?"),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    "antonyms": Family(
        "antonyms",
        "opposites of common words",
        ("antonym",),
        _make_antonyms,
        _ph(
            "ant",
            [
                ("train", "What is the opposite of '{w}'?"),
                ("train", "Give the antonym of '{w}'."),
                ("train", "Which word means the opposite of '{w}'?"),
                ("validation", "Name a word that is the opposite of '{w}'."),
                ("validation", "What word is opposite to '{w}'?"),
                ("test", "What is an antonym for '{w}'?"),
                ("test", "Tell me the opposite of the word '{w}'."),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    "plurals": Family(
        "plurals",
        "plurals of English nouns",
        ("plural",),
        _make_plurals,
        _ph(
            "pl",
            [
                ("train", "What is the plural of '{w}'?"),
                ("train", "Write the plural form of '{w}'."),
                ("train", "How do you say more than one '{w}'?"),
                ("validation", "Give the plural of the noun '{w}'."),
                ("validation", "What is the plural form of '{w}'?"),
                ("test", "What do you call more than one '{w}'?"),
                ("test", "Spell the plural of '{w}'."),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    "science": Family(
        "science",
        "simple science and everyday facts",
        ("fact",),
        _make_science,
        _ph(
            "sci",
            [
                ("train", "{q}"),
                ("train", "Quick question: {q}"),
                ("train", "{q} Answer in a few words."),
                ("validation", "Here is a science question. {q}"),
                ("validation", "Please answer: {q}"),
                ("test", "{q} Keep it short."),
                ("test", "Science quiz: {q}"),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    "instructions": Family(
        "instructions",
        "instruction-following checks verified by looking",
        ("word", "upper", "lower", "count", "fewer", "at_least"),
        _make_instructions,
        _ph(
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
    ),
    "reading": Family(
        "reading",
        "a fact read from a short passage",
        ("color", "owner", "age"),
        _make_reading,
        _ph(
            "rd",
            [
                ("train", "{passage}\n\n{q}"),
                ("train", "Read the passage and answer.\n{passage}\nQuestion: {q}"),
                ("train", "Passage: {passage}\n{q}"),
                ("validation", "Text: {passage}\nBased on the text, {q_lower}"),
                ("validation", "{passage}\nAnswer from the passage: {q}"),
                ("test", "Story: {passage}\n{q}"),
                ("test", "Here is a short text. {passage} {q}"),
            ],
        ),
        tier=TIER,
        key_splits=True,
    ),
    # held out whole: validation and test measure transfer to a family never trained on
    "first_letter": Family(
        "first_letter",
        "the first or last letter of a word",
        ("first", "last"),
        _make_first_letter,
        _ph(
            "fl",
            [
                ("validation", "What is the {which} letter of the word '{w}'?"),
                ("validation", "Which letter is the {which} one in '{w}'?"),
            ],
        ),
        tier=TIER,
    ),
    "next_in_sequence": Family(
        "next_in_sequence",
        "the next day, month or number",
        ("day", "month", "number"),
        _make_next_in_sequence,
        _ph("nx", [("test", "What comes right after {x}?"), ("test", "In order, which {kind} follows {x}?")]),
        tier=TIER,
    ),
}
