"""Hub datasets as sources (cj2.data.hub): ``hf://org/name[@revision][:[config:]split]`` and the ``hub`` /
``revision`` / ``config`` / ``split`` keys of a source, read offline.

No test reaches a network: every dataset is built here with ``datasets`` and read from a local copy under
``$CJ2_HUB_MIRROR`` (a ``save_to_disk`` folder or the repository's parquet files), from a ``save_to_disk``
path, or through a stand-in for ``datasets.load_dataset_builder`` (the hub path itself).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

datasets = pytest.importorskip("datasets")

from cj2.curation.pipeline import _Collected, _Decontamination, _read_sources  # noqa: E402
from cj2.curation.sources import SourceSpec, load_source, resolve_sources  # noqa: E402
from cj2.data.adapters import load_items  # noqa: E402
from cj2.data.hub import HubRef, parse_hub_uri  # noqa: E402
from cj2.data.io import DataError  # noqa: E402
from cj2.data.schema import PairwiseItem  # noqa: E402
from cj2.evaluation.benchmarks import load_benchmark  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def pair_row(i: int, *, chosen: bool = True) -> dict:
    """An UltraFeedback-binarized row (``chat_pairs``); ``chosen=False`` leaves ``chosen`` out (a bad row)."""
    q = f"What is {i} + {i}?"
    return {
        "prompt": q,
        "prompt_id": f"p{i}",
        "chosen": [{"content": q, "role": "user"}, {"content": str(2 * i), "role": "assistant"}]
        if chosen
        else None,
        "rejected": [{"content": q, "role": "user"}, {"content": str(2 * i + 1), "role": "assistant"}],
    }


ROWS = [pair_row(0), pair_row(1), pair_row(2, chosen=False), pair_row(3)]


def expected(source: str, ids=(0, 1, 3)) -> list[PairwiseItem]:
    return [
        PairwiseItem(
            id=f"p{i}",
            question=f"What is {i} + {i}?",
            response_a=str(2 * i),
            response_b=str(2 * i + 1),
            label="A",
            source=source,
            meta={"position_fixed": True},
        )
        for i in ids
    ]


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """An empty ``$CJ2_HUB_MIRROR`` folder; ``datasets``' cache in ``tmp_path`` too."""
    root = tmp_path / "mirror"
    root.mkdir()
    monkeypatch.setenv("CJ2_HUB_MIRROR", str(root))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    return root


def save_dict(root: Path, repo: str, splits: dict[str, list[dict]]) -> Path:
    path = root / repo
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}).save_to_disk(
        str(path)
    )
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- the form


def test_parse_hub_uri_forms_and_conflicts():
    assert parse_hub_uri("hf://org/name") == HubRef("org/name", "train")
    assert parse_hub_uri("hf://org/name:test") == HubRef("org/name", "test")
    assert parse_hub_uri("hf://org/name@v1.0:cfg:test") == HubRef("org/name", "test", "v1.0", "cfg")
    assert parse_hub_uri("hf://squad@refs/convert/parquet") == HubRef(
        "squad", "train", "refs/convert/parquet"
    )
    # separate keys fill what the id does not say, and must agree with what it does
    ref = parse_hub_uri("hf://org/name", split="dev", revision="abc123", config="x")
    assert ref == HubRef("org/name", "dev", "abc123", "x") and ref.uri == "hf://org/name@abc123:x:dev"
    assert parse_hub_uri(ref.uri) == ref
    assert parse_hub_uri("hf://org/name@v1:dev", split="dev", revision="v1").uri == "hf://org/name@v1:dev"
    with pytest.raises(ValueError, match="split 'train' contradicts the split 'dev'"):
        parse_hub_uri("hf://org/name:dev", split="train")
    with pytest.raises(ValueError, match="revision 'v2' contradicts the revision 'v1'"):
        parse_hub_uri("hf://org/name@v1", revision="v2")
    for bad in (
        "hf://",
        "hf://org/name:a:b:c",
        "hf://org/name@",
        "hf://org/na me",
        "hf://a/b/c",
        "hf://org/x:",
    ):
        with pytest.raises(ValueError):
            parse_hub_uri(bad)


def test_source_spec_hub_keys():
    spec = SourceSpec.from_mapping(
        "uf", {"hub": "org/name", "revision": "v1", "config": "c", "split": "dev", "adapter": "chat_pairs"}
    )
    assert (spec.location, spec.revision, spec.config, spec.split) == ("hf://org/name", "v1", "c", "dev")
    assert (
        SourceSpec.from_mapping("uf", {"hub": "o/n", "hub_name": "c", "adapter": "chat_pairs"}).config == "c"
    )
    with pytest.raises(ValueError, match="either path or hub"):
        SourceSpec.from_mapping("uf", {"hub": "o/n", "path": "x.jsonl", "adapter": "chat_pairs"})
    with pytest.raises(ValueError, match="hf:// form goes in path"):
        SourceSpec.from_mapping("uf", {"hub": "hf://o/n", "adapter": "chat_pairs"})
    with pytest.raises(ValueError, match="hub is for type 'file'"):
        SourceSpec.from_mapping("b", {"type": "builtin", "n": 2, "hub": "o/n"})
    with pytest.raises(ValueError, match="needs a path .or hub"):
        SourceSpec.from_mapping("uf", {"adapter": "chat_pairs"})
    # the builtin sources keep their default split
    assert [i.id for i in load_source(SourceSpec("b", type="builtin", n=2), seed=0).items] == [
        i.id for i in load_source(SourceSpec("b", type="builtin", n=2, split="train"), seed=0).items
    ]


# ---------------------------------------------------------------------------- same adapters, errors, skips


def test_hub_source_reads_like_the_same_file(tmp_path, mirror):
    save_dict(mirror, "org/uf", {"train_prefs": ROWS, "test_prefs": ROWS[:1]})
    file = write_jsonl(tmp_path / "uf.jsonl", ROWS)
    catalog = {
        "from_file": {"path": str(file), "adapter": "chat_pairs", "on_error": "skip"},
        "by_keys": {"hub": "org/uf", "split": "train_prefs", "adapter": "chat_pairs", "on_error": "skip"},
        "by_uri": {"path": "hf://org/uf:train_prefs", "adapter": "chat_pairs", "on_error": "skip"},
    }
    loaded = {s.name: load_source(s, seed=0) for s in resolve_sources(list(catalog), catalog)}
    for name, data in loaded.items():
        assert data.items == expected(name), name
        reader = data.stats["reader"]
        assert (reader["read"], reader["kept"], reader["skipped"]) == (4, 3, 1), name
        assert reader["skipped_by_reason"] == {"missing_field": 1}, name
    assert loaded["from_file"].stats["origin"] == {"path": str(file)}
    origin = loaded["by_keys"].stats["origin"]
    fingerprint = datasets.load_from_disk(str(mirror / "org/uf"))["train_prefs"]._fingerprint
    assert origin == {
        "hub": "org/uf",
        "config": None,
        "split": "train_prefs",
        "revision": None,
        "local_copy": str(mirror / "org/uf"),
        "hash": None,
        "fingerprint": fingerprint,
        "rows": 4,
    }
    assert loaded["by_uri"].stats["origin"] == origin
    # the other split, through the same source keys
    spec = SourceSpec.from_mapping("t", {"hub": "org/uf", "split": "test_prefs", "adapter": "chat_pairs"})
    assert load_source(spec, seed=0).items == expected("t", ids=(0,))


def test_hub_rows_errors_name_source_row_and_field(tmp_path, mirror):
    save_dict(mirror, "org/uf", {"train_prefs": ROWS})
    file = write_jsonl(tmp_path / "uf.jsonl", ROWS)
    with pytest.raises(DataError) as from_file:
        load_items(str(file), "chat_pairs")
    with pytest.raises(DataError) as from_hub:
        load_items("hf://org/uf", "chat_pairs", split="train_prefs")
    assert str(from_file.value) == f"{file}:3: field 'chosen': missing required field"
    assert str(from_hub.value) == "hf://org/uf:train_prefs:3: field 'chosen': missing required field"
    got = (from_hub.value.path, from_hub.value.line, from_hub.value.field, from_hub.value.kind)
    assert got == ("hf://org/uf:train_prefs", 3, "chosen", "missing_field")
    with pytest.raises(
        DataError, match=r"hf://org/uf:dev: no split 'dev'; the saved dataset has \['train_prefs'\]"
    ):
        load_items("hf://org/uf:dev", "chat_pairs")
    with pytest.raises(DataError, match="contradicts"):
        load_items("hf://org/uf:train_prefs", "chat_pairs", split="test")
    with pytest.raises(DataError, match="revision and config"):
        load_items(str(file), "chat_pairs", revision="v1")


def test_hub_download_of_parquet_files_with_revision_and_config(mirror):
    """A repository's files as downloaded (README configs, parquet data files), kept per revision."""
    copy = mirror / "org/judge@v1"
    (copy / "small").mkdir(parents=True)
    (copy / "full").mkdir()
    datasets.Dataset.from_list(ROWS[:2]).to_parquet(str(copy / "small" / "train.parquet"))
    datasets.Dataset.from_list(ROWS).to_parquet(str(copy / "full" / "train.parquet"))
    datasets.Dataset.from_list(ROWS[3:]).to_parquet(str(copy / "full" / "test.parquet"))
    (copy / "README.md").write_text(
        textwrap.dedent(
            """\
            ---
            configs:
            - config_name: small
              data_files:
              - {split: train, path: small/train.parquet}
            - config_name: full
              data_files:
              - {split: train, path: full/train.parquet}
              - {split: test, path: full/test.parquet}
            ---
            """
        )
    )
    spec = SourceSpec.from_mapping(
        "j",
        {"hub": "org/judge", "revision": "v1", "config": "full", "adapter": "chat_pairs", "on_error": "skip"},
    )
    data = load_source(spec, seed=0)
    assert data.items == expected("j")
    assert data.stats["reader"]["skipped_by_reason"] == {"missing_field": 1}
    origin = data.stats["origin"]
    assert (origin["hub"], origin["revision"], origin["config"], origin["split"]) == (
        "org/judge",
        "v1",
        "full",
        "train",
    )
    assert origin["local_copy"] == str(copy) and origin["rows"] == 4
    assert origin["hash"] and origin["fingerprint"]
    assert load_items("hf://org/judge@v1:small:train", "chat_pairs") == expected("chat_pairs", ids=(0, 1))
    assert load_items("hf://org/judge@v1:full:test", "chat_pairs") == expected("chat_pairs", ids=(3,))
    with pytest.raises(DataError, match="no split 'dev'; the dataset has"):
        load_items("hf://org/judge@v1:full:dev", "chat_pairs")


def test_saved_dataset_as_a_local_path(tmp_path, mirror):
    path = tmp_path / "saved"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(path))
    stats: dict = {}
    assert load_items(str(path), "chat_pairs", on_error="skip", stats=stats) == expected("chat_pairs")
    assert stats["skipped_by_reason"] == {"missing_field": 1} and stats["origin"]["path"] == str(path)
    with pytest.raises(DataError, match=rf"^{path}:train:3: field 'chosen'"):
        load_items(str(path), "chat_pairs")


# ------------------------------------------------------------------------------- the hub itself, stood in


class FakeBuilder:
    """What ``datasets.load_dataset_builder`` gives for a hub repo, without a network."""

    calls: list = []

    def __init__(self, path, name, revision=None):
        FakeBuilder.calls.append((path, name, revision))
        self.hash = "0123456789abcdef0123456789abcdef01234567"  # the commit the revision resolved to
        self.info = SimpleNamespace(splits={"train": "...", "test": "..."})

    def download_and_prepare(self):
        pass

    def as_dataset(self, split):
        return datasets.Dataset.from_list(ROWS)


def test_hub_path_passes_revision_config_and_records_the_commit(monkeypatch, mirror):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset_builder", FakeBuilder)
    FakeBuilder.calls = []
    stats: dict = {}
    items = load_items("hf://org/remote@main:cfg:train", "chat_pairs", on_error="skip", stats=stats)
    assert items == expected("chat_pairs") and stats["skipped_by_reason"] == {"missing_field": 1}
    assert FakeBuilder.calls == [("org/remote", "cfg", "main")]
    assert stats["origin"]["hash"] == "0123456789abcdef0123456789abcdef01234567"
    assert "local_copy" not in stats["origin"] and stats["origin"]["revision"] == "main"
    with pytest.raises(
        DataError, match=r"hf://org/remote:dev: no split 'dev'; the dataset has \['test', 'train'\]"
    ):
        load_items("hf://org/remote:dev", "chat_pairs")

    def unreachable(*args, **kwargs):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset_builder", unreachable)
    with pytest.raises(DataError, match="hub dataset cannot be read from the hub .ConnectionError: no route"):
        load_items("hf://org/remote", "chat_pairs")


def test_offline_without_a_copy_and_without_datasets(monkeypatch, mirror):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match=r"offline mode is set.*CJ2_HUB_MIRROR holds no copy") as info:
        load_items("hf://org/absent:train", "chat_pairs")
    assert info.value.path == "hf://org/absent:train"
    save_dict(mirror, "org/uf", {"train": ROWS})
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(DataError, match=r'needs the `datasets` package.*pip install "cj2\[hub\]"'):
        load_items("hf://org/uf", "chat_pairs")
    with pytest.raises(DataError, match=r'pip install "cj2\[hub\]"'):
        load_items(str(mirror / "org/uf"), "chat_pairs")


def test_datasets_is_imported_only_for_hub_sources(tmp_path):
    file = write_jsonl(tmp_path / "uf.jsonl", ROWS[:2])
    code = (
        "import sys, cj2.data, cj2.curation.sources, cj2.evaluation.benchmarks\n"
        "from cj2.data.adapters import load_items\n"
        f"assert len(load_items({str(file)!r}, 'chat_pairs')) == 2\n"
        "assert 'datasets' not in sys.modules, 'datasets imported for a local file'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------------------ curation stats, benchmarks


def test_curation_stats_record_what_each_source_read(tmp_path, mirror):
    save_dict(mirror, "org/uf", {"train_prefs": ROWS})
    file = write_jsonl(tmp_path / "uf.jsonl", ROWS)
    cfg = {
        "sources": [
            {
                "name": "hub",
                "path": "hf://org/uf@v2:train_prefs",
                "adapter": "chat_pairs",
                "on_error": "skip",
            },
            {"name": "file", "path": str(file), "adapter": "chat_pairs", "on_error": "skip"},
        ]
    }
    per_source: dict = {}
    routed = _read_sources(cfg, 0, _Decontamination(), _Collected(), per_source)
    assert [len(items) for _, items in routed.reward_groups] == [3, 3]
    hub = per_source["hub"]["origin"]
    assert (hub["hub"], hub["revision"], hub["split"], hub["local_copy"]) == (
        "org/uf",
        "v2",
        "train_prefs",
        str(mirror / "org/uf"),  # no org/uf@v2 copy: the unversioned one, named
    )
    assert per_source["file"]["origin"] == {"path": str(file)}
    assert (
        per_source["hub"]["reader"]["skipped_by_reason"] == per_source["file"]["reader"]["skipped_by_reason"]
    )


def test_benchmark_path_takes_the_hub_form(mirror):
    rows = [
        {"prompt": "2+2?", "chosen": "4", "rejected": "5", "subset": "math-prm", "id": 1},
        {
            "prompt": "Capital of France?",
            "chosen": "Paris",
            "rejected": "Lyon",
            "subset": "math-prm",
            "id": 2,
        },
    ]
    save_dict(mirror, "allenai/reward-bench", {"filtered": rows})
    bench = load_benchmark({"name": "rewardbench", "path": "hf://allenai/reward-bench:filtered"})
    assert [(i.id, i.question, i.response_a, i.response_b) for i in bench.items] == [
        ("1", "2+2?", "4", "5"),
        ("2", "Capital of France?", "Paris", "Lyon"),
    ]
    assert bench.stats["origin"]["hub"] == "allenai/reward-bench" and bench.stats["read"] == 2
    for name in ("rmb", "judgerbenchv2"):
        with pytest.raises(ValueError, match="cannot say them: download it"):
            load_benchmark({"name": name, "path": "hf://org/x"})
