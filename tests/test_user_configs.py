"""User config folders join the search path (CJ2_CONFIG_PATH, hydra.searchpath) without editing cj2."""

from __future__ import annotations

import os

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from cj2.runtime import register_resolvers
from hydra_plugins.cj2_searchpath import ENV_VAR, user_config_dirs

register_resolvers()


def _compose(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="cj2.conf", version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def _folder(root, name: str, experiment_steps: int):
    (root / name / "experiment").mkdir(parents=True)
    (root / name / "experiment" / "mine.yaml").write_text(
        f"# @package _global_\ntrainer:\n  max_steps: {experiment_steps}\n"
    )
    return root / name


def test_an_experiment_in_a_user_folder_composes(tmp_path, monkeypatch):
    first = _folder(tmp_path, "first", 7)
    (first / "source").mkdir()
    (first / "source" / "team_pairs.yaml").write_text(
        "type: file\nkind: reward\npath: x.jsonl\nadapter: chat_pairs\n"
    )
    monkeypatch.setenv(ENV_VAR, str(first))
    assert _compose("train", ["+experiment=mine", "model=tiny"]).trainer.max_steps == 7
    cfg = _compose("curate", ["+source@catalog.team=team_pairs", "sources=[team]"])
    assert cfg.catalog.team.adapter == "chat_pairs" and list(cfg.sources) == ["team"]


def test_several_folders_search_in_order_and_before_cj2(tmp_path, monkeypatch):
    first, second = _folder(tmp_path, "first", 7), _folder(tmp_path, "second", 9)
    monkeypatch.setenv(ENV_VAR, os.pathsep.join([str(first), str(second)]))
    assert user_config_dirs() == [first.resolve(), second.resolve()]
    assert _compose("train", ["+experiment=mine"]).trainer.max_steps == 7
    # A user file named like one of cj2's wins over cj2's.
    (first / "loss").mkdir()
    (first / "loss" / "margin.yaml").write_text("name: margin\nmarker_of_the_user_file: true\n")
    assert _compose("train", ["loss=margin"]).loss.marker_of_the_user_file is True


def test_without_the_variable_only_cj2s_configs(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert user_config_dirs() == []
    with pytest.raises(Exception, match="experiment"):
        _compose("train", ["+experiment=mine"])


def test_a_missing_folder_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no_such_conf"))
    with pytest.raises(FileNotFoundError, match="CJ2_CONFIG_PATH.*no_such_conf"):
        user_config_dirs()
