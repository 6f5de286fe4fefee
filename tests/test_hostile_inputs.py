"""Hostile and careless input, catalogued (issue 26): each case asserts its exact outcome.

* records: every bad number or text is refused naming file, line and field;
* configs: every non-finite or out-of-range number names its key and the valid range; ``+key``/``++key``
  typos (every entry) and credentials where they would be saved are refused (without echoing the secret);
* run folders: a run is never replaced, damaged or shared: a refused start leaves the folder byte for byte
  as it was (hashed), a resume keeps the CSV rows and checks the data's content;
* secrets: a planted secret appears in no file a run writes, nor on its stdout or stderr, for every entry,
  on success and on each refusal path (subprocesses: Hydra writes and prints before cj2 runs), nor in a
  sweep folder;
* results: a results row edited by hand is refused on resume, naming file and line; a file from an older cj2
  (no digests) is refused as such, with both ways on; a row with int keys digests the same after the JSON
  round trip;
* paths: cj2.moj's out as a folder, under a file or equal to a judge file, and a folder given as a data file,
  are refused by name.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from cj2.confcheck import ConfigValueError, check_additions, check_numbers
from cj2.data.datamodule import JudgeDataModule
from cj2.data.io import DataError
from cj2.data.records import read_preference_records, read_train_records
from cj2.rundir import LOCK_FILE, RunFolderBusy, RunFolderTaken, RunLock
from cj2.runtime import REDACTED, check_secrets, redact, register_resolvers, scrub_text
from tests.test_bad_input import good_line as line
from tests.test_bad_input import write_lines as write
from tests.test_train import CONF, ROOT, TINY_RUN, cfg_for

register_resolvers()


def raw(text: str) -> bytes:
    """A line spelled out (JSON's NaN/Infinity literals, escapes json.dumps would not write)."""
    return text.encode()


BASE = '"id": "x", "messages": [{"role": "user", "content": "Q"}], "format": "cj2_choice", "verdict": "A"'
RESP = '"response": "ok {\\"Choice\\": \\"Model A\\"}"'

# (case, line 2 of the file, field the error names, words the message holds)
RECORD_CASES = [
    ("weight NaN", raw(f'{{{BASE}, {RESP}, "weight": NaN}}'), "weight", "non-finite"),
    ("weight Infinity", raw(f'{{{BASE}, {RESP}, "weight": Infinity}}'), "weight", "non-finite"),
    ("weight -Infinity", raw(f'{{{BASE}, {RESP}, "weight": -Infinity}}'), "weight", "non-finite"),
    ("weight 1e39 (beyond float32)", line(weight=1e39), "weight", "at most"),
    ("weight 1e300", line(weight=1e300), "weight", "at most"),
    (
        "weight 10**400 (an int beyond any float)",
        raw(f'{{{BASE}, {RESP}, "weight": 1{"0" * 400}}}'),
        "weight",
        "at most",
    ),
    ("weight negative", line(weight=-0.5), "weight", "non-negative"),
    ("weight a string", line(weight="1"), "weight", "non-negative"),
    ("weight a bool", line(weight=True), "weight", "non-negative"),
    ("NaN nested in meta", raw(f'{{{BASE}, {RESP}, "meta": {{"score": NaN}}}}'), "meta.score", "non-finite"),
    (
        "lone surrogate in a message",
        raw(
            '{"id": "x", "messages": [{"role": "user", "content": "Q \\ud800"}], '
            + RESP
            + ', "format": "cj2_choice", "verdict": "A"}'
        ),
        "messages[0].content",
        "lone surrogate \\ud800",
    ),
    (
        "lone surrogate in the response",
        raw(f'{{{BASE}, "response": "bad \\udfff text"}}'),
        "response",
        "lone surrogate",
    ),
    ("invalid UTF-8 bytes", b'{"id": "\xff\xfe"}', "id", "not valid UTF-8 (byte 0xff at byte 8 of the line"),
    (
        "a Latin-1 byte in a message",
        raw(f"{{{BASE}, {RESP}}}").replace(b'"content": "Q"', b'"content": "caf\xe9"'),
        "messages[0].content",
        "byte 0xe9",
    ),
    ("an invalid byte outside any string", b'{"id": "x"\x80}', None, "byte 0x80"),
    ("meta a list", line(meta=[1, 2]), "meta", "expected an object"),
    ("source a number", line(source=3), "source", "expected str"),
    ("id true", line(id=True), "id", "expected str"),
    ("id a number", line(id=7), "id", "expected str"),
    ("id empty", line(id=" "), "id", "empty id"),
    ("unknown field wieght", line(wieght=0.0), "wieght", "unknown field"),
    ("unknown field verdcit", line(verdcit="B"), "verdcit", "unknown field"),
    ("format none with a verdict", line(format="none", verdict="A"), "verdict", "format 'none'"),
]


@pytest.mark.parametrize("case,bad,field,words", RECORD_CASES, ids=[c[0] for c in RECORD_CASES])
def test_bad_record_is_refused_naming_file_line_and_field(tmp_path, case, bad, field, words):
    path = write(tmp_path / "train.jsonl", [line(), bad])
    with pytest.raises(DataError) as err:
        read_train_records(path)
    assert str(err.value).startswith(f"{path}:2")
    assert err.value.line == 2 and err.value.field == field, str(err.value)
    assert words in str(err.value)


def test_unknown_field_lists_the_valid_ones(tmp_path):
    path = write(tmp_path / "t.jsonl", [line(wieght=0.0)])
    with pytest.raises(
        DataError, match=r"a record has id, messages, response, verdict, format, source, weight, meta"
    ):
        read_train_records(path)


def test_preference_records_get_the_same_checks(tmp_path):
    row = {
        "id": "p",
        "messages": [{"role": "user", "content": "Q"}],
        "chosen": "a",
        "rejected": "b",
        "format": "cj2_choice",
    }
    for bad, field in (({**row, "chosn": "a"}, "chosn"), ({**row, "id": 3}, "id")):
        path = write(tmp_path / "p.jsonl", [json.dumps(bad).encode()])
        with pytest.raises(DataError) as err:
            read_preference_records(path)
        assert err.value.field == field and err.value.line == 1
    path = write(
        tmp_path / "p.jsonl",
        [
            raw(
                '{"id": "p", "messages": [{"role": "user", "content": "\\ud800"}], "chosen": "a", '
                '"rejected": "b", "format": "cj2_choice"}'
            )
        ],
    )
    with pytest.raises(DataError, match="lone surrogate") as err:
        read_preference_records(path)
    assert err.value.field == "messages[0].content"


def test_invalid_utf8_in_a_json_array_names_line_and_field(tmp_path):
    from cj2.data.io import read_rows

    path = tmp_path / "bench.json"
    path.write_bytes(b'[\n  {"id": "a", "question": "q"},\n  {"id": "b", "question": "caf\xe9"}\n]\n')
    with pytest.raises(DataError) as err:
        list(read_rows(path))
    assert str(err.value) == (
        f"{path}:3: field 'question': not valid UTF-8 (byte 0xe9 at byte 30 of the line; another encoding?)"
    )


@pytest.mark.parametrize("suffix", [".jsonl.gz", ".json.gz"])
def test_truncated_compressed_file_is_an_error_naming_it(tmp_path, suffix):
    full = gzip.compress(b"\n".join([line(id=f"r{i}") for i in range(200)]) + b"\n")
    path = tmp_path / f"train{suffix}"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError, match="truncated or corrupt") as err:
        read_train_records(path)
    assert err.value.path == str(path) and err.value.kind == "truncated_file"
    path.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_train_records(path)


# ------------------------------------------------------------------------------------ the data module
def _files(tmp_path: Path, n: int = 4, **changes) -> Path:
    return write(tmp_path / "train.jsonl", [line(id=f"r{i}", **changes) for i in range(n)])


def test_train_files_given_as_one_string_is_one_path(tmp_path, tokenizer):
    path = _files(tmp_path)
    dm = JudgeDataModule(tokenizer, train_files=str(path))
    assert dm.train_files == [str(path)] and len(dm.train_records()) == 4
    with pytest.raises(ValueError, match=r"data.train_files\[0\] must be a path"):
        JudgeDataModule(tokenizer, train_files=[3])


def test_the_same_file_for_training_and_validation_is_refused(tmp_path, tokenizer):
    path = _files(tmp_path)
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(path.read_bytes())
    for val in (str(path), str(tmp_path / "." / "train.jsonl"), str(copy)):
        with pytest.raises(ValueError, match=r"data.val_files\[0\].*same file as data.train_files\[0\]"):
            JudgeDataModule(tokenizer, train_files=[str(path)], val_files=[val])


def test_duplicate_ids_are_refused_naming_both_places(tmp_path, tokenizer):
    a = write(tmp_path / "a.jsonl", [line(id="x"), line(id="y"), line(id="x")])
    with pytest.raises(
        DataError, match=rf"a.jsonl:3: field 'id': duplicate record id 'x' \(first at {a}:1\)"
    ):
        JudgeDataModule(tokenizer, train_files=[str(a)]).train_records()
    b = write(tmp_path / "b.jsonl", [line(id="z")])
    c = write(tmp_path / "c.jsonl", [line(id="q"), line(id="z")])
    with pytest.raises(DataError, match=rf"c.jsonl:2: .*duplicate record id 'z' \(first at {b}:1\)"):
        JudgeDataModule(tokenizer, train_files=[str(b), str(c)]).train_records()


def test_all_zero_weights_are_refused(tmp_path, tokenizer):
    path = _files(tmp_path, weight=0.0)
    with pytest.raises(ValueError, match="weight 0.*nothing would be trained"):
        JudgeDataModule(tokenizer, train_files=[str(path)]).train_records()


def test_records_name_their_places(tmp_path, tokenizer):
    path = _files(tmp_path, n=3)
    dm = JudgeDataModule(tokenizer, train_files=[str(path)])
    dm.train_records()
    assert dm.describe_records(["r2", "builtin-1"]) == f"'r2' ({path}:3), 'builtin-1'"


# ------------------------------------------------------------------------------------- config numbers
def _compose(name: str, overrides: list[str], hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides, return_hydra_config=hydra)


# (entry, override, the message's start)
NUMBER_CASES = [
    ("train", "trainer.max_steps=-1", "trainer.max_steps=-1 is out of range: valid is an integer >= 1"),
    ("train", "trainer.max_steps=0", "trainer.max_steps=0 is out of range"),
    ("train", "optimizer.lr=0", "optimizer.lr=0 is out of range: valid is a number in (0, 1]"),
    ("train", "optimizer.lr=-0.001", "optimizer.lr=-0.001 is out of range"),
    ("train", "optimizer.lr=nan", "optimizer.lr=nan: a number must be finite"),
    ("train", "optimizer.lr=inf", "optimizer.lr=inf: a number must be finite"),
    ("train", "loss.gamma=-inf", "loss.gamma=-inf: a number must be finite"),
    (
        "train",
        "optimizer.betas=[0.9,1.0]",
        "optimizer.betas.1=1.0 is out of range: valid is a number in [0, 1)",
    ),
    ("train", "optimizer.weight_decay=-0.1", "optimizer.weight_decay=-0.1 is out of range"),
    ("train", "data.batch_size=0", "data.batch_size=0 is out of range: valid is an integer >= 1"),
    (
        "train",
        "data.max_skip_fraction=1.5",
        "data.max_skip_fraction=1.5 is out of range: valid is a number in [0, 1]",
    ),
    (
        "train",
        "data.builtin.n_train=-5",
        "data.builtin.n_train=-5 is out of range: a count or size, valid is >= 0",
    ),
    ("train", "seed=-1", "seed=-1 is out of range"),
    ("train", "checkpoint_every_n_steps=0", "checkpoint_every_n_steps=0 is out of range"),
    ("train", "trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches=0 is out of range"),
    ("train", "scheduler.warmup_ratio=2", "scheduler.warmup_ratio=2 is out of range"),
    ("train", "callbacks.generated.max_new_tokens=0", "callbacks.generated.max_new_tokens=0 is out of range"),
    ("train", "loss.k=1", "loss.k=1 is out of range: valid is an integer >= 2"),
    ("train", "stop_after_steps=-2", "stop_after_steps=-2 is out of range"),
    ("train", "trainer.max_epochs=0", "trainer.max_epochs=0 is out of range"),
    ("train", "callbacks.generated.table_rows=-1", "callbacks.generated.table_rows=-1 is out of range"),
    (
        "evaluate",
        "benchmark.limit=0",
        "benchmark.limit=0 is out of range: valid is an integer >= 1 (or null)",
    ),
    ("evaluate", "benchmark.limit=-1", "benchmark.limit=-1 is out of range"),
    ("evaluate", "evaluate.bootstrap=-1", "evaluate.bootstrap=-1 is out of range"),
    ("evaluate", "judge.max_new_tokens=0", "judge.max_new_tokens=0 is out of range"),
    ("refine", "refine.rounds=0", "refine.rounds=0 is out of range"),
    ("curate", "rejection.m=0", "rejection.m=0 is out of range"),
    ("curate", "mixture.weights.rft=-1", "mixture.weights.rft=-1 is out of range"),
    ("curate", "decontamination.threshold=nan", "decontamination.threshold=nan: a number must be finite"),
    ("moj", "min_votes=0", "min_votes=0 is out of range: valid is an integer >= 1 (or null)"),
]


@pytest.mark.parametrize("entry,override,message", NUMBER_CASES, ids=[c[1] for c in NUMBER_CASES])
def test_out_of_range_number_names_key_and_range(entry, override, message):
    if entry in ("evaluate", "refine"):
        import cj2.evaluation.runner
        import cj2.refinement.runner

        cj2.evaluation.runner.register_resolvers()
        cj2.refinement.runner.register_resolvers()
    cfg = _compose(entry, [override])
    with pytest.raises(ConfigValueError) as err:
        check_numbers(cfg)
    assert str(err.value).startswith(message), str(err.value)


@pytest.mark.parametrize(
    "entry,overrides",
    [
        ("train", []),
        ("train", ["+experiment=quickstart"]),
        ("train", ["trainer.max_steps=-1", "trainer.max_epochs=2"]),
        ("evaluate", ["benchmark.limit=1"]),
        ("evaluate", ["benchmark.limit=null"]),
        ("curate", ["+pipeline=paper"]),
    ],
)
def test_valid_numbers_pass(entry, overrides):
    import cj2.evaluation.runner

    cj2.evaluation.runner.register_resolvers()
    check_numbers(_compose(entry, overrides))


# ---------------------------------------------------------------------------- +key additions (typos)
# (entry, override, refused): ``+key`` adds a key; ``++key`` (Hydra's add-or-override) adds one where the
# key is not in the config, and is an ordinary override where it is
ADDITION_CASES = [
    ("train", "+foo=1", True),
    ("train", "+model.dtyp=bfloat16", True),
    ("train", "+logger.wandb.projet=x", True),
    ("train", "++model.dtyp=bf16", True),
    ("train", "++foo=1", True),
    ("train", "++logger.wandb.projet=x", True),
    ("train", "++optimizer.lr=1e-4", False),  # an existing key
    ("train", "++model.dtype=float32", False),  # an existing key outside the addable sections
    ("train", "++seed=3", False),
    ("train", "+trainer.val_check_interval=2", False),  # a Trainer argument (Lightning refuses unknown ones)
    ("train", "++trainer.val_check_interval=2", False),
    ("train", "+callbacks.mine._target_=cj2.callbacks.StopAfterSteps", False),
    ("train", "+experiment=quickstart", False),  # a group, not a key
    ("evaluate", "+foo=1", True),
    ("evaluate", "++foo=1", True),
    ("evaluate", "++placement=fixed", False),
    ("curate", "++foo=1", True),
    ("curate", "++rejection.mm=2", True),
    ("curate", "++rejection.m=2", False),
    ("refine", "++foo=1", True),
    ("refine", "++seed=1", False),
    ("moj", "+foo=1", True),
    ("moj", "++foo=1", True),
    ("moj", "++tie_policy=tie", False),
    # inside a section whose keys are known before anything is built: judged at once, not by a late check
    ("evaluate", "++judge.temprature=0.1", True),
    ("evaluate", "+judge.max_new_token=3", True),
    ("evaluate", "++judge.max_new_tokens=3", False),
    ("evaluate", "++evaluate.bootstrp=3", True),
    ("evaluate", "++benchmark.n_querie=1", True),
    ("evaluate", "++benchmark.n_queries=1", False),
    ("curate", "++generator.p_corect=0.5", True),
    ("curate", "++generator.p_correct=0.5", False),
    ("refine", "++policy.batchsize=2", True),
    ("refine", "++questions.nn=2", True),
    ("refine", "++second_critic.max_new_tokens=8", False),
]

# (entry, override, the nearest valid keys the refusal names)
NEAREST_CASES = [
    ("evaluate", "+judge.max_new_token=3", "judge.max_new_tokens"),
    ("evaluate", "++evaluate.bootstrp=3", "evaluate.bootstrap"),
    ("curate", "++generator.p_corect=0.5", "generator.p_correct"),
    ("train", "++model.dtyp=bf16", "model.dtype"),
    ("train", "+optimizer.lrr=1e-4", None),  # optimizer: a constructor's keywords, checked when built
]


@pytest.mark.parametrize(
    "entry,override,refused", ADDITION_CASES, ids=[f"{c[0]}:{c[1]}" for c in ADDITION_CASES]
)
def test_key_additions_nothing_reads_are_refused(entry, override, refused):
    from hydra.core.hydra_config import HydraConfig

    import cj2.evaluation.runner
    import cj2.refinement.runner

    cj2.evaluation.runner.register_resolvers()
    cj2.refinement.runner.register_resolvers()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=entry, overrides=[override], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            if refused:
                key = override.split("=")[0]
                with pytest.raises(ConfigValueError) as err:
                    check_additions(entry, cfg)
                assert str(err.value).startswith(f"{key}: adds a key that {entry} does not read (a typo?)")
            else:
                check_additions(entry, cfg)
        finally:
            HydraConfig.instance().cfg = None


@pytest.mark.parametrize("entry,override,nearest", NEAREST_CASES, ids=[c[1] for c in NEAREST_CASES])
def test_a_refused_addition_names_the_nearest_valid_keys(entry, override, nearest):
    from hydra.core.hydra_config import HydraConfig

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=entry, overrides=[override], return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)
        try:
            if nearest is None:
                check_additions(entry, cfg)
                return
            with pytest.raises(ConfigValueError) as err:
                check_additions(entry, cfg)
        finally:
            HydraConfig.instance().cfg = None
    assert f"The nearest valid key(s): {nearest}" in str(err.value), str(err.value)


# ------------------------------------------------------------------------------------- secrets
SECRET = "sk-hostile-SECRET-0123456789"


@pytest.mark.parametrize(
    "cfg,where",
    [
        (
            {"judge": {"base_url": f"http://user:{SECRET}@127.0.0.1:9/v1"}},
            "judge.base_url: a URL with credentials",
        ),
        (
            {"generator": {"api_key_env": SECRET}},
            "generator.api_key_env must be the NAME of an environment variable",
        ),
        ({"judge": {"api_key_env": "my key"}}, "judge.api_key_env must be the NAME"),
        (
            {"sources": [{"path": f"https://h/d.jsonl?token={SECRET}"}]},
            "sources[0].path: a URL carrying a key",
        ),
    ],
)
def test_credentials_where_they_would_be_saved_are_refused_without_echo(cfg, where):
    with pytest.raises(ValueError) as err:
        check_secrets(cfg)
    assert str(err.value).startswith(where) and SECRET not in str(err.value)
    check_secrets({"judge": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "OPENAI_API_KEY"}})


def test_redaction_covers_overrides_urls_and_env_values():
    red = redact(
        {
            "a": [f"+judge.api_key={SECRET}", f"generator.api_key_env={SECRET}", "x=1"],
            "url": f"https://u:{SECRET}@h/v1",
            "key_env": SECRET,
            "name_env": "OPENAI_API_KEY",
        }
    )
    assert SECRET not in json.dumps(red)
    assert red["a"] == [f"+judge.api_key={REDACTED}", f"generator.api_key_env={REDACTED}", "x=1"]
    assert red["name_env"] == "OPENAI_API_KEY" and red["url"] == f"https://{REDACTED}@h/v1"
    assert SECRET not in scrub_text(f"GET https://u:{SECRET}@h/v1 failed")
    from cj2.runtime import arm_dir

    assert SECRET not in arm_dir(f"seed=1,+judge.api_key={SECRET}")


# ------------------------------------------------------------------------------ run-folder ownership
FAST = [
    "trainer.max_steps=2",
    "callbacks.generated=null",
    "callbacks.verdict_logits=null",
    "checkpoint_every_n_steps=1",
]


def folder_hash(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        h.update(str(p.relative_to(path)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture()
def finished_run(tmp_path):
    from cj2.train import train

    run = tmp_path / "run"
    train(cfg_for(run, *FAST))
    return run


def test_a_run_is_never_replaced_or_damaged(finished_run, tmp_path):
    from cj2.module import IncompatibleResumeError
    from cj2.train import train

    run = finished_run
    before = folder_hash(run)
    # a fresh start on it: refused with the choices
    with pytest.raises(RunFolderTaken) as err:
        train(cfg_for(run, *FAST))
    for choice in ("ckpt_path=last", "another run_name", "overwrite=true"):
        assert choice in str(err.value)
    # a resume that changes what is trained: refused, naming the key
    with pytest.raises(IncompatibleResumeError, match=r"optimizer.lr: 0.001 in the checkpoint, 0.002 now"):
        train(cfg_for(run, *FAST, "ckpt_path=last", "optimizer.lr=2e-3"))
    # a bad config number: refused before anything is written
    with pytest.raises(ConfigValueError):
        train(cfg_for(run, *FAST, "ckpt_path=last", "optimizer.lr=nan"))
    # random bytes as ckpt_path: an error naming the file, never torch's advice to unpickle anything
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(os.urandom(256))
    with pytest.raises(RunFolderTaken):  # an outside checkpoint would restart this run
        train(cfg_for(run, *FAST, f"ckpt_path={junk}"))
    with pytest.raises(ValueError, match=rf"checkpoint ckpt_path={junk}: not a loadable checkpoint") as err:
        train(cfg_for(tmp_path / "other", *FAST, f"ckpt_path={junk}"))
    assert "weights_only=False" not in str(err.value)
    # overwrite with a resume: contradictory
    with pytest.raises(RunFolderTaken, match="choose one"):
        train(cfg_for(run, *FAST, "ckpt_path=last", "overwrite=true"))
    assert folder_hash(run) == before  # nothing above changed a byte
    # overwrite=true: the old run moves aside, whole
    train(cfg_for(run, *FAST, "overwrite=true"))
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert len(aside) == 1 and folder_hash(aside[0]) == before


def test_a_mix_of_judgers_ground_truth_is_never_replaced(tmp_path):
    from cj2.moj import moj

    judges = _moj_args(tmp_path)[0].split("=", 1)[1].strip("[]").split(",")
    out = tmp_path / "out" / "gt.jsonl"
    cfg = {"judges": judges, "out": str(out), "tie_policy": "drop"}
    moj(cfg)
    moj(cfg)  # the same ground truth again: written again, nothing to refuse
    before = folder_hash(out.parent)
    with pytest.raises(FileExistsError, match=rf"out={out} holds another ground truth; .*overwrite=true"):
        moj({**cfg, "tie_policy": "first"})
    with pytest.raises(ConfigValueError, match="min_votes=0 is out of range"):
        moj({**cfg, "min_votes": 0, "overwrite": True})
    assert folder_hash(out.parent) == before
    moj({**cfg, "tie_policy": "first", "overwrite": True})  # the old one moves aside, with its agreement
    aside = sorted(p.name for p in out.parent.iterdir() if ".replaced-" in p.name)
    assert len(aside) == 2 and aside[1] == aside[0] + ".agreement.json"
    assert (out.parent / aside[0]).read_text() != out.read_text()


def test_the_run_folder_is_locked_and_a_dead_holders_lock_taken_over(tmp_path, caplog):
    from cj2.train import train

    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):  # another process's training, as far as the folder can tell
        with pytest.raises(
            RunFolderBusy, match=rf"in use: another training holds its lock \(pid {os.getpid()} on"
        ):
            train(cfg_for(run, *FAST))
    assert list(run.iterdir()) == []  # the refused start wrote nothing
    # a lock file left by a killed process: no flock holds it any more
    (run / LOCK_FILE).write_text("pid 999999 on somehost since 2020-01-01T00:00:00\n")
    with caplog.at_level(logging.WARNING, logger="cj2.rundir"):
        train(cfg_for(run, *FAST, "overwrite=true"))
    assert "took over the lock left by a process that no longer holds it (pid 999999" in caplog.text
    assert (run / "metrics.json").exists() and not (run / LOCK_FILE).exists()


def _csv_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_resume_keeps_earlier_csv_rows_and_checks_the_data_content(tmp_path):
    from cj2.module import IncompatibleResumeError
    from cj2.train import train

    data = _files(tmp_path, n=8)
    common = [*FAST, "trainer.max_steps=4", f"data.train_files=[{data}]", "data.builtin.n_train=0"]
    full, part = tmp_path / "full", tmp_path / "part"
    train(cfg_for(full, *common))
    train(cfg_for(part, *common, "stop_after_steps=2"))
    assert {r["step"] for r in _csv_rows(part)} >= {"0", "1"}
    train(cfg_for(part, *common, "ckpt_path=last"))
    loss = "train/loss_step" if "train/loss_step" in _csv_rows(full)[0] else "train/loss"
    a = [(r["step"], r.get(loss)) for r in _csv_rows(full) if r.get(loss)]
    b = [(r["step"], r.get(loss)) for r in _csv_rows(part) if r.get(loss)]
    assert len(a) >= 4 and [s for s, _ in a] == [s for s, _ in b]  # every step's row, once
    assert [float(v) for _, v in a] == pytest.approx([float(v) for _, v in b], abs=1e-5)
    # the training file edited since the checkpoint: refused, naming it; nothing written
    write(data, [line(id=f"r{i}", verdict="B", response='ok {"Choice": "Model B"}') for i in range(8)])
    before = folder_hash(part)
    with pytest.raises(IncompatibleResumeError, match=rf"data.train_files: the content of {data} changed"):
        train(cfg_for(part, *common, "ckpt_path=last", "trainer.max_steps=4"))
    assert folder_hash(part) == before


def test_nonfinite_loss_names_the_records_files_and_lines(tmp_path, monkeypatch):
    from cj2.module import JudgeModule, NonFiniteLossError
    from cj2.train import train

    data = _files(tmp_path, n=8)

    def nan_loss(self, batch, exact_step_norm=False):
        return {"loss": torch.tensor(float("nan"), requires_grad=True)}

    monkeypatch.setattr(JudgeModule, "compute_loss", nan_loss)
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg_for(tmp_path / "run", *FAST, f"data.train_files=[{data}]", "data.builtin.n_train=0"))
    assert f"({data}:" in str(err.value) and "records: 'r" in str(err.value)


# ------------------------------------------------------------------------- secrets, end to end
def _env(**extra) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CJ2_TEST")}
    return {**env, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", **extra}


def _run(entry: str, args: list[str], cwd: Path, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"cj2.{entry}", *args],
        cwd=cwd,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _assert_no_secret(proc: subprocess.CompletedProcess, root: Path) -> None:
    assert SECRET not in proc.stdout and SECRET not in proc.stderr, (proc.stdout[-2000:], proc.stderr[-2000:])
    leaked = [p for p in root.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaked == []


TRAIN = [a for a in TINY_RUN if not a.startswith("logger=")] + ["logger=default", "callbacks.generated=null"]
EVALUATE = [
    "judge.name_or_path=tiny",
    "judge.max_new_tokens=4",
    "benchmark.n_queries=1",
    "benchmark.scenarios=[arithmetic]",
    "benchmark.limit=2",
    "evaluate.bootstrap=0",
    "evaluate.progress=false",
]
CURATE = ["catalog.builtin.n=2", "rejection.m=2", "decontamination.enabled=false", "rejection.progress=false"]


# (entry, overrides, expected return code): each refusal path, and a success with the secret in the config
SECRET_PATHS = [
    ("train", [f"+judge.api_key={SECRET}"], "adds a key that train does not read"),
    ("train", [f"++judge.api_key={SECRET}"], "++judge.api_key: adds a key that train does not read"),
    ("train", [f"judge_api_key={SECRET}"], "Could not override 'judge_api_key'"),  # Hydra's own error
    ("train", [f"+hydra.job.env_set.MY_API_KEY={SECRET}", "trainer.max_steps=1"], None),
    ("evaluate", [f"+judge.api_key={SECRET}"], "judge.api_key: secrets never go in configs"),
    (
        "evaluate",
        ["judge=openai", "judge.name_or_path=m", f"judge.base_url=http://u:{SECRET}@127.0.0.1:9/v1"],
        "judge.base_url: a URL with credentials (user:password@host) is refused",
    ),
    ("evaluate", [f"+hydra.job.env_set.MY_API_KEY={SECRET}"], None),
    ("curate", [f"+generator.api_key={SECRET}"], "generator.api_key: secrets never go in configs"),
    (
        "curate",
        [
            "generator=openai",
            "generator.name_or_path=m",
            "generator.base_url=http://127.0.0.1:9/v1",
            f"generator.api_key_env={SECRET}",
        ],
        "generator.api_key_env must be the NAME of an environment variable",
    ),
    ("curate", [f"+hydra.job.env_set.MY_API_KEY={SECRET}"], None),
    ("refine", [f"+judge.api_key={SECRET}"], "api_key"),
    (
        "refine",
        ["policy=openai", "policy.name_or_path=m", f"policy.base_url=http://u:{SECRET}@127.0.0.1:9/v1"],
        "policy.base_url: a URL with credentials",
    ),
    ("refine", [f"+hydra.job.env_set.MY_API_KEY={SECRET}"], None),
    ("moj", [f"+judge.api_key={SECRET}"], "+judge.api_key: adds a key that moj does not read"),
    ("moj", [f"++api_key={SECRET}"], "++api_key: adds a key that moj does not read"),
    ("moj", [f"+hydra.job.env_set.MY_API_KEY={SECRET}"], None),
]


def _moj_args(tmp_path: Path) -> list[str]:
    """Two judges' verdict files for ``cj2.moj`` (it writes no run folder: ``out`` and its agreement)."""
    files = []
    for name, verdicts in (("a", "AB"), ("b", "AA")):
        rows = [{"id": str(i), "verdict": v} for i, v in enumerate(verdicts)]
        files.append(write(tmp_path / f"{name}.jsonl", [json.dumps(r).encode() for r in rows]))
    return [f"judges=[{files[0]},{files[1]}]", f"out={tmp_path / 'out' / 'gt.jsonl'}"]


def _refine_args(tmp_path: Path) -> list[str]:
    """The scripted refine run of tests/test_refine.py (policy and critics from config files)."""
    from tests.test_refine import FAMILY, N, _write_configs

    _write_configs(tmp_path / "conf")
    return [
        "--config-dir",
        str(tmp_path / "conf"),
        "policy=scripted",
        "judge=scripted_a",
        "judge@second_critic=scripted_b",
        "~second_critic.name_or_path",
        f"questions.n={N}",
        f"questions.families=[{FAMILY}]",
        "refine.batch_size=2",
        "refine.bootstrap=0",
        "refine.progress=false",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "entry,overrides,refusal", SECRET_PATHS, ids=[f"{c[0]}-{i}" for i, c in enumerate(SECRET_PATHS)]
)
def test_no_secret_on_disk_or_screen(tmp_path, entry, overrides, refusal):
    """A secret in the config (on success: Hydra's env_set, which reaches the process environment too) or
    in a refused override appears in no file under the run's root and nowhere in stdout or stderr."""
    where = [f"output_root={tmp_path / 'out'}", "run_name=r"]
    if entry == "refine":
        args = _refine_args(tmp_path)
        if overrides[0].startswith("policy="):  # the openai policy replaces the scripted one
            args = [a for a in args if not a.startswith("policy=")]
    elif entry == "moj":
        args, where = _moj_args(tmp_path), []
    else:
        args = {"train": TRAIN, "evaluate": EVALUATE, "curate": [*CURATE, f"cache_dir={tmp_path / 'cache'}"]}[
            entry
        ]
    proc = _run(entry, [*args, *where, *overrides], tmp_path)
    assert proc.returncode == (1 if refusal else 0), proc.stderr[-3000:]
    _assert_no_secret(proc, tmp_path)
    if refusal:
        assert refusal in proc.stderr, proc.stderr[-3000:]
    elif entry == "moj":  # no run folder: the ground truth and its agreement, no Hydra record
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["gt.jsonl", "gt.jsonl.agreement.json"]
        assert not list(tmp_path.rglob(".hydra"))
    else:  # the run wrote Hydra's record itself, the secret redacted
        (record,) = tmp_path.rglob(".hydra/hydra.yaml")
        assert f"MY_API_KEY: {REDACTED}" in record.read_text()
    if entry == "train" and refusal is None:  # the same start again: refused (the folder holds a run)
        again = _run(entry, [*args, *where, *overrides, "optimizer.lr=2e-3"], tmp_path)
        assert again.returncode == 1 and "already holds a run" in again.stderr, again.stderr[-3000:]
        _assert_no_secret(again, tmp_path)


@pytest.mark.slow
def test_no_secret_in_a_sweep_folder_even_when_the_sweep_fails_before_any_job(tmp_path):
    """Hydra saves the sweep's ``multirun.yaml`` (the config and command line) before the first job; a job
    whose config cannot be composed ends the sweep before any job runs, so nothing after that write could
    redact it: it must be written redacted."""
    sweep = ["-m", "trainer.max_step=1,2"]  # a key typo in a swept value: only the jobs' configs fail
    proc = _run(
        "train", [*sweep, f"+hydra.job.env_set.MY_API_KEY={SECRET}", f"output_root={tmp_path}"], tmp_path
    )
    assert proc.returncode == 1 and "Key 'max_step' is not in struct" in proc.stderr, proc.stderr[-3000:]
    (record,) = tmp_path.rglob("multirun.yaml")
    assert f"MY_API_KEY: {REDACTED}" in record.read_text()
    _assert_no_secret(proc, tmp_path)


def test_the_sweep_record_is_saved_redacted(tmp_path):
    from hydra._internal.core_plugins import basic_sweeper
    from omegaconf import OmegaConf

    from cj2.runtime import redact_sweep_record

    redact_sweep_record()
    redact_sweep_record()  # idempotent
    cfg = OmegaConf.create(
        {
            "judge": {"api_key": SECRET, "base_url": f"http://u:{SECRET}@h/v1", "batch_size": 2},
            "hydra": {"overrides": {"task": [f"+judge.api_key={SECRET}", "seed=1"]}, "run": {"dir": "${x}"}},
            "x": "out",
        }
    )
    basic_sweeper.OmegaConf.save(cfg, tmp_path / "multirun.yaml")  # the sweeper's one use of the name
    saved = OmegaConf.load(tmp_path / "multirun.yaml")
    assert SECRET not in (tmp_path / "multirun.yaml").read_text()
    assert saved.judge.batch_size == 2 and saved.hydra.overrides.task == [
        f"+judge.api_key={REDACTED}",
        "seed=1",
    ]
    assert OmegaConf.to_container(saved.hydra.run)["dir"] == "${x}"  # saved as written, not resolved
    assert basic_sweeper.OmegaConf.create({"a": 1}).a == 1  # everything else is OmegaConf's own


class WaitForFile:
    """A training callback (test-only) that holds the first batch until ``path`` exists: the test decides
    when the run may go on, so a second process meets it mid-run whatever the machine's speed."""

    def __new__(cls, path: str):
        import time

        import lightning as L

        class _Wait(L.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                while not Path(path).exists():
                    time.sleep(0.05)

        return _Wait()


@pytest.mark.slow
def test_two_trainings_in_one_folder_the_second_is_refused_naming_the_first(tmp_path):
    release = tmp_path / "release"
    wait = [f"+callbacks.wait._target_={__name__}.WaitForFile", f"+callbacks.wait.path={release}"]
    first = subprocess.Popen(
        [sys.executable, "-m", "cj2.train", *TRAIN, *wait, f"output_root={tmp_path}", "run_name=r"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = tmp_path / "runs" / "r" / LOCK_FILE
    try:
        import time

        while first.poll() is None and not (lock.exists() and lock.read_text().startswith("pid")):
            time.sleep(0.05)
        second = _run("train", [*TRAIN, f"output_root={tmp_path}", "run_name=r"], tmp_path)
    finally:
        release.touch()
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 1, second.stderr[-3000:]
    assert f"in use: another training holds its lock (pid {first.pid} on" in second.stderr


# ---------------------------------------------------------------------------- benchmark items
def test_items_the_judge_cannot_score_are_reported():
    from cj2.data.itemcheck import item_notes
    from cj2.data.schema import PairwiseItem
    from cj2.data.templates import get_template

    items = [
        PairwiseItem(id="t", question="q", response_a="a", response_b="b", label="tie"),
        PairwiseItem(id="same", question="q", response_a="x ", response_b="x", label="A"),
        PairwiseItem(id="ok", question="q", response_a="a", response_b="b", label="B"),
        PairwiseItem(id="same-tie", question="q", response_a="x", response_b="x", label="tie"),
    ]
    no_tie, with_tie = get_template("cj2_check"), get_template("mtbench_pair")
    notes = item_notes(items, items, no_tie)
    assert notes[0].startswith("2 item(s) are labelled tie, which template 'cj2_check' (format 'cj2_choice')")
    assert "'t', 'same-tie'" in notes[0] and "counts each as wrong" in notes[0]
    assert (
        notes[1].startswith("1 pair(s) have two identical responses but the label A or B")
        and "'same'" in notes[1]
    )
    assert [n for n in item_notes(items, items, with_tie) if "tie" in n.split(",")[0]] == []


def test_predictions_for_ids_the_benchmark_lacks_are_reported(tmp_path):
    from cj2.data.io import write_jsonl
    from cj2.evaluation.benchmarks import load_benchmark
    from cj2.evaluation.runner import run_evaluation
    from tests.test_evaluate import _judgebench_file, config, perfect_predictions

    data = _judgebench_file(tmp_path / "jb.jsonl")
    bench = {"name": "judgebench", "path": str(data)}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "winner_json")
    rows = [json.loads(x) for x in preds.read_text().splitlines()]
    write_jsonl(
        preds, rows + [{"id": "p9", "order": "AB", "output": "x"}, {"id": "P0", "order": "BA", "output": "x"}]
    )
    metrics = run_evaluation(config(bench, {"backend": "predictions", "path": str(preds)}), tmp_path / "r")
    (note,) = [n for n in metrics["notes"] if "predictions file" in n]
    unknown = "has rows for 2 id(s) the benchmark does not have, not scored ('p9', 'P0')"
    assert note == f"the predictions file {preds} {unknown}"
    assert note in (tmp_path / "r" / "report.md").read_text()


# ----------------------------------------------------------------------------- results rows on resume
def _flip_verdict(row: dict) -> dict:
    return {**row, "verdict": {"A": "B", "B": "A"}.get(row["verdict"], "A"), "correct": not row["correct"]}


# (case, what is done to line 3 of judgments.jsonl): each a hand edit a resume must not trust
ROW_EDITS = [
    ("verdict flipped", _flip_verdict),
    ("correct flipped", lambda r: {**r, "correct": not r["correct"]}),
    ("output changed", lambda r: {**r, "output": r["output"] + " "}),
    ("a field added", lambda r: {**r, "note": "checked by hand"}),
    ("digest removed", lambda r: {k: v for k, v in r.items() if k != "row_sha256"}),
    ("digest of another row", lambda r: {**r, "row_sha256": "0" * 64}),
]


@pytest.mark.parametrize("case,edit", ROW_EDITS, ids=[c[0] for c in ROW_EDITS])
def test_a_hand_edited_results_row_is_refused_on_resume_naming_file_and_line(tmp_path, case, edit):
    from cj2.evaluation.benchmarks import load_benchmark
    from cj2.evaluation.runner import run_evaluation
    from tests.test_evaluate import config, perfect_predictions

    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    cfg = config(bench, {"backend": "predictions", "path": str(preds)})
    first = run_evaluation(cfg, tmp_path / "run")
    path = tmp_path / "run" / "judgments.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    lines[2] = json.dumps(edit(json.loads(lines[2]))) + "\n"
    path.write_text("".join(lines))
    before = folder_hash(tmp_path / "run")
    with pytest.raises(DataError) as err:
        run_evaluation(cfg, tmp_path / "run")
    assert str(err.value).startswith(f"{path}:3: 1 result row(s) do not match the digest"), str(err.value)
    assert "line(s) 3)" in str(err.value) and "Delete those lines" in str(err.value)
    assert folder_hash(tmp_path / "run") == before  # nothing rewritten, no row reused
    del lines[2]  # the remedy the message gives: the item is judged again, the result as before
    path.write_text("".join(lines))
    again = run_evaluation(cfg, tmp_path / "run")
    assert again["runs"]["generate"]["new_rows"] == 1 and again["results"] == first["results"]


def test_every_edited_row_is_named_and_an_untouched_file_resumes(tmp_path):
    from cj2.evaluation.store import ResultStore

    path = tmp_path / "refine.jsonl"
    store = ResultStore(path, lambda r: r["id"])
    store.append([{"id": str(i), "score": 0.5, "arms": {"a": [1, 2.5, None]}} for i in range(14)])
    assert ResultStore(path, lambda r: r["id"]).rows == store.rows  # the digest never reaches the rows
    lines = path.read_text().splitlines(keepends=True)
    for i in range(1, 13):  # lines 2..13: the score changed
        lines[i] = lines[i].replace('"score": 0.5', '"score": 1.0')
    path.write_text("".join(lines))
    with pytest.raises(
        DataError,
        match=r"refine.jsonl:2: 12 result row\(s\) .*line\(s\) 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 2 more\)",
    ):
        ResultStore(path, lambda r: r["id"])


def test_a_results_file_from_an_older_cj2_is_refused_with_how_to_judge_again_or_continue(tmp_path):
    """No line has a digest: not a hand edit but an older cj2. The message says so and gives both ways on
    (move the file aside to judge again; ``python -m cj2.evaluation.store FILE`` to keep its rows), and each
    works as it says."""
    from cj2.evaluation.benchmarks import load_benchmark
    from cj2.evaluation.runner import run_evaluation
    from tests.test_evaluate import config, perfect_predictions

    bench = {"name": "embedded", "n_queries": 1, "scenarios": ["arithmetic"]}
    preds = perfect_predictions(load_benchmark(bench).items, tmp_path / "p.jsonl", "cj2_choice")
    cfg = config(bench, {"backend": "predictions", "path": str(preds)})
    first = run_evaluation(cfg, tmp_path / "run")
    path = tmp_path / "run" / "judgments.jsonl"
    old = [
        {k: v for k, v in json.loads(x).items() if k != "row_sha256"} for x in path.read_text().splitlines()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in old))  # as an older cj2 wrote it
    before = folder_hash(tmp_path / "run")
    with pytest.raises(DataError) as err:
        run_evaluation(cfg, tmp_path / "run")
    msg = str(err.value)
    assert msg.startswith(f"{path}: written by an older cj2, before result rows carried a digest"), msg
    assert f"{len(old)} row(s) cannot be checked" in msg
    assert f"mv {path} {path}.old" in msg and f"python -m cj2.evaluation.store {path}`" in msg
    assert "do not match" not in msg  # not called an edit
    assert folder_hash(tmp_path / "run") == before
    # continue: the command the message gives adds the digests (the original kept), and the rows are reused
    done = subprocess.run(
        [sys.executable, "-m", "cj2.evaluation.store", str(path)], capture_output=True, text=True, check=True
    )
    assert f"{len(old)} row(s) digested" in done.stdout
    assert [
        json.loads(x) for x in (tmp_path / "run" / "judgments.jsonl.before-digests").read_text().splitlines()
    ] == old
    again = run_evaluation(cfg, tmp_path / "run")
    assert again["runs"]["generate"]["new_rows"] == 0 and again["results"] == first["results"]
    # judge again: with the file moved aside every item is judged anew
    path.rename(path.with_name(path.name + ".old"))
    anew = run_evaluation(cfg, tmp_path / "run")
    assert anew["runs"]["generate"]["new_rows"] == len(old) and anew["results"] == first["results"]


def test_add_digests_does_not_bless_an_edited_row(tmp_path):
    from cj2.evaluation.store import ResultStore, add_digests

    path = tmp_path / "r.jsonl"
    ResultStore(path, lambda r: r["id"]).append([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
    path.write_text(path.read_text().replace('"v": 2', '"v": 3'))
    with pytest.raises(DataError, match=r"r.jsonl:2: the row does not match its digest"):
        add_digests(path)
    assert not (tmp_path / "r.jsonl.before-digests").exists()


# rows holding what JSON changes on the way to the file: int keys (sorted as numbers in Python, as strings
# once read back), mixed int/str keys (Python cannot sort them), tuples
ROUND_TRIP_ROWS = [
    ("int keys", {"id": "a", "votes": {2: "A", 10: "B"}}),
    ("mixed keys", {"id": "a", "votes": {1: "A", "x": "B"}}),
    ("nested int keys", {"id": "a", "arms": [{3: 0.5, 20: {1: True}}]}),
    ("tuple", {"id": "a", "span": (1, 2)}),
]


@pytest.mark.parametrize("case,row", ROUND_TRIP_ROWS, ids=[c[0] for c in ROUND_TRIP_ROWS])
def test_a_row_digests_the_same_after_the_json_round_trip(tmp_path, case, row):
    """A fresh run's rows reopen without a spurious refusal, and a fresh run and its resume hold the same
    rows (as read back from the file)."""
    from cj2.evaluation.store import ResultStore

    path = tmp_path / "r.jsonl"
    store = ResultStore(path, lambda r: r["id"])
    assert store.append([row]) == 1
    reopened = ResultStore(path, lambda r: r["id"])
    assert reopened.rows == store.rows == {"a": json.loads(json.dumps(row))}


def test_plus_plus_key_in_a_real_evaluate_run_is_judged_against_the_composed_config(tmp_path):
    """``python -m cj2.evaluate ++judge.<typo>=...`` is refused before the run folder gets a config, state or
    placement file, naming the nearest valid key; ``++`` of a key the judge has is an ordinary override."""
    out = f"output_root={tmp_path / 'o'}"
    bad = _run("evaluate", [*EVALUATE, out, "run_name=r", "++judge.max_new_token=3"], tmp_path)
    assert bad.returncode != 0
    assert "++judge.max_new_token: adds a key that evaluate does not read (a typo?). " in bad.stderr
    assert "The nearest valid key(s): judge.max_new_tokens" in bad.stderr
    written = {p.name for p in (tmp_path / "o" / "eval" / "r").iterdir()} - {".hydra", "evaluate.log"}
    assert written == set()  # refused before evaluate wrote anything of its own
    good = _run("evaluate", [*EVALUATE, out, "run_name=r", "++judge.max_new_tokens=3"], tmp_path)
    assert good.returncode == 0, good.stderr[-2000:]
    saved = (tmp_path / "o" / "eval" / "r" / "config.yaml").read_text()
    assert "max_new_tokens: 3" in saved


# (case, out relative to tmp_path, judges' names: a and b are files, d a folder, expected error start)
MOJ_OUT_CASES = [
    ("out a folder", "d", "ab", "out={d} is a folder; out names the ground-truth JSONL file to write"),
    (
        "out under a file",
        "a.jsonl/gt.jsonl",
        "ab",
        "out={a.jsonl/gt.jsonl}: {a.jsonl} is a file, not a folder",
    ),
    ("out a judge file", "b.jsonl", "ab", "out={b.jsonl} is also judges[1] ({b.jsonl})"),
    ("a judge a folder", "gt.jsonl", "ad", "{d}: a folder, not a file"),
]


@pytest.mark.parametrize("case,out,judges,expected", MOJ_OUT_CASES, ids=[c[0] for c in MOJ_OUT_CASES])
@pytest.mark.parametrize("overwrite", [False, True])
def test_moj_refuses_an_out_or_judge_path_that_is_not_a_file_by_name(
    tmp_path, case, out, judges, expected, overwrite
):
    """Not a bare IsADirectoryError / FileExistsError, and nothing moved or written (``overwrite=true`` would
    otherwise move a judge's own file aside)."""
    from cj2.moj import moj

    for name in ("a", "b"):
        (tmp_path / f"{name}.jsonl").write_text('{"id": "1", "verdict": "A"}\n')
    (tmp_path / "d").mkdir()
    files = {"a": tmp_path / "a.jsonl", "b": tmp_path / "b.jsonl", "d": tmp_path / "d"}
    before = folder_hash(tmp_path)
    cfg = {"judges": [str(files[j]) for j in judges], "out": str(tmp_path / out), "overwrite": overwrite}
    with pytest.raises((ValueError, DataError)) as err:
        moj(cfg)
    want = expected.replace("{", str(tmp_path) + "/{").replace("{", "").replace("}", "")
    assert str(err.value).startswith(want), str(err.value)
    assert folder_hash(tmp_path) == before


# Tokens with an environment variable name's characters (letters, digits, _): typed into an *_env key they
# passed the name check and were saved in clear; and URL query parameters whose names hold a secret word
# other than the few once listed (client_secret, private_token, an S3 presigned URL's two)
TOKEN = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"
SHAPED_SECRETS = [
    (
        "hf token in api_key_env",
        {"judge": {"api_key_env": TOKEN}},
        "judge.api_key_env must be the NAME",
        [TOKEN],
    ),
    (
        "github token in api_key_env",
        {"generator": {"api_key_env": "ghp_" + TOKEN[3:] + "0000"}},
        "generator.api_key_env must be the NAME",
        ["ghp_" + TOKEN[3:] + "0000"],
    ),
    (
        "aws key id",
        {"policy": {"api_key_env": "AKIAIOSFODNN7EXAMPLE"}},
        "policy.api_key_env",
        ["AKIAIOSFODNN7EXAMPLE"],
    ),
    (
        "client_secret",
        {"judge": {"base_url": f"https://h/v1?client_secret={SECRET}"}},
        "judge.base_url: a URL carrying a key in its query (client_secret=...)",
        [SECRET],
    ),
    (
        "presigned S3 url",
        {
            "sources": [
                {
                    "path": f"https://b.s3.amazonaws.com/d.jsonl?X-Amz-Credential={TOKEN}&X-Amz-Signature={SECRET}"
                }
            ]
        },
        "sources[0].path: a URL carrying a key in its query (X-Amz-Credential=..., X-Amz-Signature=...)",
        [TOKEN, SECRET],
    ),
]


@pytest.mark.parametrize("case,cfg,where,values", SHAPED_SECRETS, ids=[c[0] for c in SHAPED_SECRETS])
def test_token_shaped_env_values_and_any_secret_query_parameter_are_refused_and_scrubbed(
    case, cfg, where, values
):
    with pytest.raises(ValueError) as err:
        check_secrets(cfg)
    assert str(err.value).startswith(where), str(err.value)
    text = json.dumps(redact(cfg)) + scrub_text(f"Error executing job with overrides: {json.dumps(cfg)}")
    for value in values:
        assert value not in str(err.value) and value not in text


@pytest.mark.parametrize(
    "cfg",
    [
        {"judge": {"api_key_env": name}}
        for name in (
            "OPENAI_API_KEY",
            "HF_TOKEN",
            "MY_SERVICE_API_KEY_2024_PROD",
            "http_proxy",
            "CJ2_TEST_KEY",
        )
    ]
    + [{"judge": {"base_url": "https://h/v1?model=x&page=2"}}],
)
def test_env_names_and_plain_urls_still_pass(cfg):
    check_secrets(cfg)
    assert redact(cfg) == cfg
