"""Easy tier: facts looked up from the tables here: capitals, antonyms, plurals, simple science.

Wrong answers: the larger city or another capital, a synonym or an unrelated antonym, a regularised or
doubled plural, a neighbouring fact. Each table's rows are split 70/15/15 between train, validation
and test (registered here with :func:`~cj2.data.tasks.easy.base.key_split`).

``FAMILIES`` holds this module's registry entries (:class:`~cj2.data.tasks.base.Family`), in registry order.
"""

from __future__ import annotations

import random

from cj2.data.tasks.answers import check_text
from cj2.data.tasks.base import Family, Problem
from cj2.data.tasks.easy.base import TABLE_SPLITS, TIER, make_phrasings, make_problem, table_splits

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
    return make_problem(
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
    return make_problem(
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
    return make_problem(
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
    return make_problem(
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


TABLE_SPLITS.update(
    {
        "capitals": table_splits("capitals", [c for c, _, _ in CAPITALS]),
        "antonyms": table_splits("antonyms", ["|".join(sorted(r[:2])) for r in ANTONYMS]),
        "plurals": table_splits("plurals", [r[0] for r in PLURALS]),
        "science": table_splits("science", [r[0] for r in SCIENCE]),
    }
)


FAMILIES: tuple[Family, ...] = (
    Family(
        "capitals",
        "capital cities",
        ("capital",),
        _make_capitals,
        make_phrasings(
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
        check=check_text,
    ),
    Family(
        "antonyms",
        "opposites of common words",
        ("antonym",),
        _make_antonyms,
        make_phrasings(
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
        check=check_text,
    ),
    Family(
        "plurals",
        "plurals of English nouns",
        ("plural",),
        _make_plurals,
        make_phrasings(
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
        check=check_text,
    ),
    Family(
        "science",
        "simple science and everyday facts",
        ("fact",),
        _make_science,
        make_phrasings(
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
        check=check_text,
    ),
)
