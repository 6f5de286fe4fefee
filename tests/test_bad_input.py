"""Broken inputs, catalogued: each gives an error naming file, line and field, or is skipped and counted.

Readers covered here: training records, preference records, the data module (skips and their limit),
the collator (over-long samples, verdicts that cannot be located, a template whose output does not match),
and the Hydra configs (a typo). The public-dataset adapters have their own table in test_adapters.py.
"""

from __future__ import annotations

import json

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError

from cj2.data.datamodule import JudgeDataModule, TooManySkipped
from cj2.data.io import DataError
from cj2.data.records import read_preference_records, read_train_records
from cj2.data.schema import TrainRecord
from tests.test_train import CONF

GOOD = {
    "id": "r1",
    "messages": [{"role": "user", "content": "Q?"}],
    "response": 'ok {"Choice": "Model A"}',
    "verdict": "A",
    "format": "cj2_choice",
    "source": "t",
}


def write_lines(path, lines: list[bytes]):
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def good_line(**changes) -> bytes:
    row = {**GOOD, **changes}
    for k, v in list(row.items()):
        if v is ...:
            del row[k]
    return json.dumps(row).encode()


# (name, bad line, the field the error must name (None: no field), words the message must contain)
RECORD_CASES = [
    ("truncated JSON line", good_line()[:40], None, "invalid JSON"),
    ("non-UTF-8 bytes", b'{"id": "\xff\xfe"}', "id", "UTF-8"),
    ("not an object", b"[1, 2]", None, "JSON object"),
    ("missing field", good_line(response=...), "response", "missing"),
    ("wrong type", good_line(messages="hello"), "messages", "expected list"),
    (
        "bad message role",
        good_line(messages=[{"role": "robot", "content": "x"}]),
        "messages[0].role",
        "robot",
    ),
    ("unknown label", good_line(verdict="C"), "verdict", "not a label"),
    ("unknown format", good_line(format="stars"), "format", "unknown verdict format"),
    ("empty response", good_line(response="   "), "response", "empty"),
    ("negative weight", good_line(weight=-1), "weight", "non-negative"),
]


@pytest.mark.parametrize("name,line,field,words", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_training_record_reader(tmp_path, name, line, field, words):
    path = write_lines(tmp_path / "train.jsonl", [good_line(), line])
    with pytest.raises(DataError) as err:
        read_train_records(path)
    msg = str(err.value)
    assert f"{path}:2" in msg and words in msg
    assert err.value.line == 2 and err.value.field == field


def test_preference_record_reader(tmp_path):
    row = {
        "id": "p",
        "messages": [{"role": "user", "content": "Q"}],
        "chosen": "a",
        "rejected": "",
        "format": "cj2_choice",
    }
    path = write_lines(tmp_path / "pref.jsonl", [json.dumps(row).encode()])
    with pytest.raises(DataError, match=r"pref.jsonl:1: field 'rejected': empty response"):
        read_preference_records(path)


def _records(n_bad: int, n_good: int) -> list[TrainRecord]:
    good = [
        TrainRecord(
            id=f"g{i}",
            messages=[{"role": "user", "content": f"Q{i}"}],
            response='check {"Choice": "Model A"}',
            verdict="A",
            format="cj2_choice",
        )
        for i in range(n_good)
    ]
    bad = [
        TrainRecord(
            id=f"b{i}",
            messages=[{"role": "user", "content": "Q"}],
            response="I think the first one, maybe.",
            verdict="A",
            format="cj2_choice",
        )
        for i in range(n_bad)
    ]
    return good + bad


def test_unlocatable_verdicts_are_skipped_and_counted(tokenizer):
    dm = JudgeDataModule(
        tokenizer, train_records=_records(1, 39), val_records=_records(0, 2), max_skip_fraction=0.05
    )
    dm.setup("fit")
    assert dm.stats["train"]["skipped_by_reason"] == {"verdict_not_found": 1}
    assert dm.stats["train"]["kept"] == 39


def test_too_many_skips_stop_the_run_with_examples(tokenizer):
    dm = JudgeDataModule(tokenizer, train_records=_records(5, 5), max_skip_fraction=0.05)
    with pytest.raises(TooManySkipped, match=r"5 of 10 records skipped.*verdict_not_found.*b0"):
        dm.setup("fit")


def test_template_whose_output_format_does_not_match_is_skipped(tokenizer):
    # a record claims winner_json but its response uses the bracket format
    rec = TrainRecord(
        id="m",
        messages=[{"role": "user", "content": "Q"}],
        response="So: [[A]]",
        verdict="A",
        format="winner_json",
    )
    dm = JudgeDataModule(tokenizer, train_records=[rec] + _records(0, 30), max_skip_fraction=0.1)
    dm.setup("fit")
    assert dm.stats["train"]["skipped_by_reason"] == {"verdict_not_found": 1}


def test_over_long_samples_are_truncated_or_dropped_and_counted(tokenizer):
    long = TrainRecord(
        id="long",
        messages=[{"role": "user", "content": "word " * 600}],
        response='fine {"Choice": "Model B"}',
        verdict="B",
        format="cj2_choice",
    )
    dm = JudgeDataModule(tokenizer, train_records=[long] + _records(0, 30), max_length=128)
    dm.setup("fit")
    assert dm.stats["train"]["prompt_truncated"] == 1 and dm.stats["train"]["skipped"] == 0
    dm = JudgeDataModule(
        tokenizer,
        train_records=[long] + _records(0, 30),
        max_length=128,
        overlong="drop",
        max_skip_fraction=0.1,
    )
    dm.setup("fit")
    assert dm.stats["train"]["skipped_by_reason"] == {"overlong": 1}


@pytest.mark.parametrize(
    "override,words",
    [
        ("trainer.max_step=3", "max_step"),  # a typo in a key
        ("loss=margn", "margn"),  # a typo in a group option
        ("+experiment=quickstrat", "quickstrat"),
    ],
)
def test_config_typo_is_a_clear_error(override, words):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        with pytest.raises((ConfigCompositionException, ConfigKeyError)) as err:
            compose(config_name="train", overrides=[override])
    assert words in str(err.value)


def test_loss_config_typo_is_a_clear_error():
    from cj2.losses import build_objective

    with pytest.raises((ValueError, TypeError), match="gama"):
        build_objective({"name": "margin", "gama": 3.0})
    with pytest.raises(ValueError, match="margn"):
        build_objective({"name": "margn"})
