"""Rejection sampling: the candidate filter, selection statistics, nested subsets, the cache, resume."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cj2.curation.prompts import build_prompts
from cj2.curation.rejection import Adaptive, JudgePrompt, filter_candidates, rejection_sample
from cj2.data.tasks import generate_items
from cj2.generation import LazySampler, SamplingParams, ScriptedSampler
from cj2.generation.simulated import SimulatedTeacher
from cj2.testing import ENV

A = '{"Reasoning": "checked", "Choice": "Model A"}'
A2 = '{"Reasoning": "checked twice", "Choice": "Model A"}'
A3 = '{"Reasoning": "checked thrice", "Choice": "Model A"}'
B = '{"Reasoning": "misread", "Choice": "Model B"}'
AMBIGUOUS = '{"Reasoning": "hmm", "Choice": "Model A", "Choice": "Model B"}'
ECHO = '{"Reasoning": "...", "Choice": "[Model A or Model B]"}'
LONG_A = " ".join(["word"] * 40) + ' "Choice": "Model A"'  # 42 word pieces: cut at max_new_tokens=30
SIM = {"backend": "simulated"}


def _prompt(pid: str, gold: str = "A") -> JudgePrompt:
    return JudgePrompt(
        id=pid,
        messages=[{"role": "user", "content": f"judge {pid}"}],
        gold=gold,
        format="cj2_choice",
        source="crafted",
    )


def test_filter_statuses_and_rewards_on_crafted_candidates():
    got = filter_candidates(
        [
            (A, "verdict"),  # right verdict
            (B, "verdict"),  # wrong verdict
            ('"Choice": "Model A', "length"),  # truncated (and unparseable)
            ("  " + A.replace(" ", "  "), "stop"),  # the first text again, whitespace aside
            (AMBIGUOUS, "stop"),  # two verdicts side by side at the end
            (ECHO, "stop"),  # the placeholder echoed back
            (A2, "length"),  # a right verdict, but cut by max_new_tokens
            (B, "stop"),  # a duplicate of a wrong one is a duplicate too
        ],
        "A",
        "cj2_choice",
    )
    assert [c.status for c in got] == [
        "pass",
        "wrong",
        "truncated",
        "duplicate",
        "unparseable",
        "unparseable",
        "truncated",
        "duplicate",
    ]
    assert [c.reward for c in got] == [1, 0, 0, 1, 0, 0, 1, 0]
    assert [c.parsed for c in got] == ["A", "B", None, "A", None, None, "A", "B"]


def _crafted_run(tmp_path, *, max_keep=None, m=None, folder="cache"):
    outputs = {
        "p0": [A, A2, B, A + " "],  # 2 pass, 1 wrong, 1 duplicate
        "p1": [B, ECHO, LONG_A, B],  # 0/4: wrong, unparseable, truncated, duplicate
        "p2": [A, A2, A3, '{"Choice": "Model A"}'],  # 4 distinct passes
        "p3": [B, A, AMBIGUOUS, B],  # gold B: pass, wrong, unparseable, duplicate
    }
    prompts = [_prompt("p0"), _prompt("p1"), _prompt("p2"), _prompt("p3", gold="B")]
    params = SamplingParams(max_new_tokens=30, seed=3)
    draws = rejection_sample(
        prompts,
        ScriptedSampler(outputs),
        params,
        draws=4,
        folder_root=tmp_path / folder,
        generator_config={"backend": "scripted", "outputs": outputs},
        shard_size=3,
        stop_on_verdict=False,
    )  # the filter sees the raw texts
    return draws, draws.select(m, max_keep=max_keep)


def test_selection_statistics_by_hand(tmp_path):
    draws, sel = _crafted_run(tmp_path)
    s = sel.stats
    assert s["prompts"] == 4 and s["samples"] == 16 and s["M"] == 4
    assert s["status"] == {
        "pass": 7,
        "spurious": 0,  # the crafted prompts carry no computed truth
        "wrong": 3,
        "unparseable": 2,
        "truncated": 1,
        "duplicate": 3,
        "over_k": 0,
    }
    assert s["kept"] == 7 and s["keep_rate"] == 7 / 16
    assert s["pass_hist"] == {"0": 1, "1": 1, "2": 1, "3": 0, "4": 1}
    assert s["pass_at_m"] == 3 / 4 and s["zero_pass"] == 1
    # parsed: p0 4, p1 2 (LONG_A lost its verdict to truncation, the echo has none), p2 4, p3 3
    assert s["parse_rate"] == 13 / 16
    assert s["finish_reasons"] == {"stop": 15, "length": 1}
    assert [r.id for r in sel.records] == ["p0#s0", "p0#s1", "p2#s0", "p2#s1", "p2#s2", "p2#s3", "p3#s0"]
    assert all(r.verdict == ("B" if r.id.startswith("p3") else "A") for r in sel.records)
    assert sel.zero_pass == [
        {
            "prompt_id": "p1",
            "source": "crafted",
            "gold_verdict": "A",
            "M": 4,
            "statuses": ["wrong", "unparseable", "truncated", "duplicate"],
            "parsed_verdicts": ["B", None, None, "B"],
        }
    ]
    # one pair per (pass, wrong) in sample order: p0 s0>s2, p3 s0>s1
    assert [p.id for p in sel.preferences] == ["p0#s0>s2", "p3#s0>s1"]
    assert sel.preferences[0].chosen == A and sel.preferences[0].rejected == B
    rows = draws.rows["p1"]
    assert [r["finish_reason"] for r in rows] == ["stop", "stop", "length", "stop"]
    assert set(rows[0]) >= {
        "prompt_id",
        "sample_idx",
        "seed",
        "response",
        "parsed_verdict",
        "gold_verdict",
        "reward",
        "finish_reason",
        "messages",
    }


def test_max_keep_and_nested_subsets(tmp_path):
    _, capped = _crafted_run(tmp_path, max_keep=2)
    assert capped.stats["kept"] == 5 and capped.stats["status"]["over_k"] == 2
    assert [r.id for r in capped.records if r.id.startswith("p2")] == ["p2#s0", "p2#s1"]
    _, first = _crafted_run(tmp_path, m=1)
    assert [r.id for r in first.records] == ["p0#s0", "p2#s0", "p3#s0"]
    assert first.stats["pass_hist"] == {"0": 1, "1": 3} and first.stats["samples"] == 4


def test_inverse_kept_weights(tmp_path):
    draws, _ = _crafted_run(tmp_path)
    sel = draws.select(weight="inverse_kept")
    assert {r.id: r.weight for r in sel.records} == {
        "p0#s0": 0.5,
        "p0#s1": 0.5,
        "p2#s0": 0.25,
        "p2#s1": 0.25,
        "p2#s2": 0.25,
        "p2#s3": 0.25,
        "p3#s0": 1.0,
    }


def _sim_prompts(n=12, templates=("cj2_short", "mtbench_pair")):
    return build_prompts(generate_items(n, seed=0), list(templates), seed=0)


def _never():
    raise AssertionError("the sampler was built on a cache hit")


def test_cache_hit_and_miss(tmp_path):
    prompts = _sim_prompts()
    params = SamplingParams(seed=0)
    first = rejection_sample(
        prompts,
        SimulatedTeacher(),
        params,
        draws=3,
        folder_root=tmp_path,
        generator_config={**SIM, "batch_size": 4},
        shard_size=5,
    )
    assert not first.cache_hit and first.shards_drawn == 3
    hit = rejection_sample(
        prompts,
        _never,
        params,
        draws=3,
        folder_root=tmp_path,
        generator_config={**SIM, "batch_size": 64},
        shard_size=5,
    )  # throughput: same key
    assert hit.cache_hit and hit.key == first.key and hit.rows == first.rows
    misses = [
        dict(draws=4, generator_config=SIM, params=params),
        dict(draws=3, generator_config={**SIM, "p_correct": 0.5}, params=params),
        dict(draws=3, generator_config=SIM, params=SamplingParams(seed=1)),
    ]
    keys = {first.key}
    for kw in misses:
        run = rejection_sample(
            prompts,
            SimulatedTeacher(),
            kw["params"],
            draws=kw["draws"],
            folder_root=tmp_path,
            generator_config=kw["generator_config"],
            shard_size=5,
        )
        assert not run.cache_hit
        keys.add(run.key)
    other_inputs = rejection_sample(
        prompts[:-1],
        SimulatedTeacher(),
        params,
        draws=3,
        folder_root=tmp_path,
        generator_config=SIM,
        shard_size=5,
    )
    keys.add(other_inputs.key)
    assert len(keys) == 5


def test_a_lazy_sampler_is_built_only_to_draw(tmp_path):
    """The pipeline's LazySampler (cj2.generation) is built at the first shard to draw, never on a cache
    hit, and draws what the sampler itself draws; it forwards the items a sampler reads."""
    prompts = _sim_prompts(4)
    kw = dict(draws=2, generator_config=SIM, progress=False)
    lazy = LazySampler(SIM)
    assert not lazy.built
    run = rejection_sample(prompts, lazy, SamplingParams(), folder_root=tmp_path / "a", **kw)
    assert lazy.built and run.shards_drawn == 1
    again = LazySampler(SIM)
    hit = rejection_sample(prompts, again, SamplingParams(), folder_root=tmp_path / "a", **kw)
    assert hit.cache_hit and not again.built and hit.rows == run.rows
    direct = rejection_sample(prompts, SimulatedTeacher(), SamplingParams(), folder_root=tmp_path / "b", **kw)
    assert direct.rows == run.rows
    p = prompts[0]
    args = ([p.messages], 1, SamplingParams())
    items = dict(keys=[p.id], items=[p.item], templates=[p.template])
    assert LazySampler(SIM).needs_items
    assert LazySampler(SIM).generate(*args, **items) == SimulatedTeacher().generate(*args, **items)


def test_secrets_never_reach_the_cache(tmp_path):
    secret = "sk-live-0123456789abcdef"
    run = rejection_sample(
        _sim_prompts(2),
        SimulatedTeacher(),
        SamplingParams(),
        draws=1,
        folder_root=tmp_path,
        generator_config={**SIM, "api_key": secret},
    )
    plain = rejection_sample(
        _sim_prompts(2), _never, SamplingParams(), draws=1, folder_root=tmp_path, generator_config=SIM
    )
    assert plain.cache_hit and plain.key == run.key  # the key never depends on a secret
    rejection_sample(
        _sim_prompts(2),
        SimulatedTeacher(),
        SamplingParams(),
        draws=1,
        folder_root=tmp_path,
        generator_config={**SIM, "extra_headers": {"Authorization": secret}},
    )
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="ignore")


def test_draws_once_nested_subsets_equal_smaller_runs(tmp_path):
    prompts = _sim_prompts(16)
    params = SamplingParams(seed=5)
    eight = rejection_sample(
        prompts, SimulatedTeacher(), params, draws=8, folder_root=tmp_path / "a", generator_config=SIM
    )
    for m in (1, 4):
        alone = rejection_sample(
            prompts, SimulatedTeacher(), params, draws=m, folder_root=tmp_path / "b", generator_config=SIM
        )
        assert eight.select(m).stats == {**alone.select(m).stats}
        assert [r.to_json() for r in eight.select(m).records] == [
            r.to_json() for r in alone.select(m).records
        ]
    ids = [{r.id for r in eight.select(m).records} for m in (1, 4, 8)]
    assert ids[0] <= ids[1] <= ids[2]


class _Crash:
    """A sampler that dies on its ``after``-th generate call (a pre-empted job)."""

    def __init__(self, inner, after: int):
        self.inner, self.after, self.calls = inner, after, 0
        self.needs_items = getattr(inner, "needs_items", False)

    def generate(self, *args, **kwargs):
        self.calls += 1
        if self.calls >= self.after:
            raise RuntimeError("simulated pre-emption")
        return self.inner.generate(*args, **kwargs)


def test_resume_after_an_in_process_crash(tmp_path):
    prompts = _sim_prompts(20, templates=["cj2_short"])  # one verdict format: one generate call per shard
    params = SamplingParams(seed=2)
    with pytest.raises(RuntimeError, match="pre-emption"):
        rejection_sample(
            prompts,
            _Crash(SimulatedTeacher(), after=3),
            params,
            draws=4,
            folder_root=tmp_path / "run",
            generator_config=SIM,
            shard_size=4,
        )
    folder = next((tmp_path / "run").iterdir())
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sorted(manifest["shards"]) == ["0", "1"] and not manifest["complete"]
    # A kill mid-write leaves a temp file; a shard written but not yet listed is drawn again.
    (folder / "shards" / ".00002.jsonl.dead.tmp").write_text('{"prompt_id": "trunc')
    (folder / "shards" / "00002.jsonl").write_text("garbage that is not listed\n")
    resumed = rejection_sample(
        prompts,
        SimulatedTeacher(),
        params,
        draws=4,
        folder_root=tmp_path / "run",
        generator_config=SIM,
        shard_size=4,
    )
    assert resumed.shards_reused == 2 and resumed.shards_drawn == 3 and not resumed.cache_hit
    clean = rejection_sample(
        prompts,
        SimulatedTeacher(),
        params,
        draws=4,
        folder_root=tmp_path / "clean",
        generator_config=SIM,
        shard_size=4,
    )
    assert resumed.rows == clean.rows
    assert resumed.select().stats == clean.select().stats
    pairs = [(r["prompt_id"], r["sample_idx"]) for rows in resumed.rows.values() for r in rows]
    assert len(pairs) == len(set(pairs)) == 80


def test_a_changed_listed_shard_is_redrawn(tmp_path):
    prompts = _sim_prompts(6)
    run = rejection_sample(
        prompts,
        SimulatedTeacher(),
        SamplingParams(),
        draws=2,
        folder_root=tmp_path,
        generator_config=SIM,
        shard_size=3,
    )
    shard = run.folder / "shards" / "00001.jsonl"
    damaged = shard.read_text()[:50]
    shard.write_text(damaged)  # truncated by a faulty disk (or edited by hand)
    kw = dict(draws=2, folder_root=tmp_path, generator_config=SIM, shard_size=3)
    again = rejection_sample(prompts, SimulatedTeacher(), SamplingParams(), **kw)
    assert again.shards_reused == 1 and again.shards_drawn == 1 and again.rows == run.rows
    # counted, and the changed file kept beside the new one, not overwritten
    assert again.shards_redrawn == ["shards/00001.jsonl: changed (kept as 00001.jsonl.changed)"]
    assert (shard.parent / "00001.jsonl.changed").read_text() == damaged
    (run.folder / "shards" / "00000.jsonl").unlink()  # a listed shard deleted: drawn again, counted
    third = rejection_sample(prompts, SimulatedTeacher(), SamplingParams(), **kw)
    assert third.shards_redrawn == ["shards/00000.jsonl: missing"] and third.rows == run.rows
    assert rejection_sample(prompts, SimulatedTeacher(), SamplingParams(), **kw).shards_redrawn == []


@pytest.mark.parametrize("adaptive", [None, Adaptive(max_keep=1, max_failures=2)], ids=["plain", "adaptive"])
def test_two_workers_then_merge_equal_one_process(tmp_path, adaptive):
    """In process: workers 0/2 and 1/2 each draw their shards (a rerun reuses them), a run without a worker
    merges; shard files, rows and the kept set equal one process drawing everything, M sweep included."""
    prompts = _sim_prompts(10)
    kw = dict(draws=3, generator_config=SIM, shard_size=3, adaptive=adaptive, progress=False)
    shared = tmp_path / "shared"
    for worker, shards in (((0, 2), ["0", "2"]), ((1, 2), ["1", "3"])):
        share = rejection_sample(
            prompts, SimulatedTeacher(), SamplingParams(seed=4), folder_root=shared, worker=worker, **kw
        )
        assert share.worker == worker and share.shards_drawn == 2 and share.shards_reused == 0
        listed = json.loads((share.folder / "workers" / f"{worker[0]:04d}-of-0002.json").read_text())
        assert sorted(listed["shards"], key=int) == shards and listed["worker"] == list(worker)
        assert [p.id for p in share.prompts] == [
            p.id for i in map(int, shards) for p in prompts[3 * i : 3 * i + 3]
        ]
        again = rejection_sample(
            prompts, _never, SamplingParams(seed=4), folder_root=shared, worker=worker, **kw
        )
        assert again.shards_drawn == 0 and again.shards_reused == 2 and again.rows == share.rows
    merged = rejection_sample(prompts, _never, SamplingParams(seed=4), folder_root=shared, **kw)
    single = rejection_sample(
        prompts, SimulatedTeacher(), SamplingParams(seed=4), folder_root=tmp_path / "one", **kw
    )
    assert merged.key == single.key and merged.shards_drawn == 0 and merged.shards_reused == 4
    assert merged.rows == single.rows and list(merged.rows) == [p.id for p in prompts]
    for shard in sorted(single.folder.glob("shards/*.jsonl")):
        assert (merged.folder / "shards" / shard.name).read_bytes() == shard.read_bytes(), shard.name
    main = [json.loads((run.folder / "manifest.json").read_text()) for run in (merged, single)]
    assert main[0] == main[1] and main[0]["complete"]
    for m in (1, 3):
        a, b = merged.select(m, max_keep=1), single.select(m, max_keep=1)
        assert a.stats == b.stats and [r.to_json() for r in a.records] == [r.to_json() for r in b.records]
    # a worker started after the merge takes its shards from the merged manifest instead of drawing them
    late = rejection_sample(
        prompts, _never, SamplingParams(seed=4), folder_root=tmp_path / "one", worker=(1, 2), **kw
    )
    assert late.shards_drawn == 0 and late.shards_reused == 2


_CHILD = textwrap.dedent(
    """
    import sys
    from cj2.curation.prompts import build_prompts
    from cj2.curation.rejection import rejection_sample
    from cj2.data.tasks import generate_items
    from cj2.generation import SamplingParams
    from cj2.generation.simulated import SimulatedTeacher

    prompts = build_prompts(generate_items(24, seed=0), ["cj2_short"], seed=0)
    run = rejection_sample(prompts, SimulatedTeacher(), SamplingParams(seed=9), draws=4, """
    """folder_root=sys.argv[1],
                           generator_config={"backend": "simulated"}, shard_size=2)
    print("DONE", run.shards_reused, run.shards_drawn, flush=True)
"""
)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["rejection.shard_written", "rejection.shard_listed"])
def test_sigkill_at_a_random_shard_then_resume_equals_uninterrupted(tmp_path, point):
    """The child kills itself (cj2.testing) after its k-th shard is written (not yet listed: it is drawn
    again) or listed (reused), k random in 1..11 of 12; no polling, so the kill always lands mid-run."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    folder_root = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    seed = random.randrange(2**32)
    k = random.Random(seed).randint(1, 11)
    why = f"{point}:{k} (seed {seed})"
    killed = subprocess.run(
        [sys.executable, str(script), str(folder_root)],
        env={**env, ENV: f"{point}:{k}"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert killed.returncode == -signal.SIGKILL, (why, killed.stdout, killed.stderr[-3000:])
    manifests = list(folder_root.glob("*/manifest.json"))  # none yet when killed before the first listing
    manifest = json.loads(manifests[0].read_text()) if manifests else {"shards": {}, "complete": False}
    before = len(manifest["shards"])
    assert before == (k if point.endswith("listed") else k - 1) and not manifest["complete"], why
    assert len(list(folder_root.glob("*/shards/*.jsonl"))) == k, why  # the k-th is on disk either way
    done = subprocess.run(
        [sys.executable, str(script), str(folder_root)], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr
    reused, drawn = map(int, done.stdout.split()[1:3])
    assert reused == before and reused + drawn == 12, why

    prompts = build_prompts(generate_items(24, seed=0), ["cj2_short"], seed=0)
    resumed = rejection_sample(
        prompts,
        _never,
        SamplingParams(seed=9),
        draws=4,
        folder_root=folder_root,
        generator_config=SIM,
        shard_size=2,
    )
    clean = rejection_sample(
        prompts,
        SimulatedTeacher(),
        SamplingParams(seed=9),
        draws=4,
        folder_root=tmp_path / "clean",
        generator_config=SIM,
        shard_size=2,
    )
    assert resumed.cache_hit and resumed.rows == clean.rows
    assert list(resumed.rows) == [p.id for p in prompts]  # every prompt exactly once, in order
    assert resumed.select().stats == clean.select().stats


class _TTY(io.StringIO):
    """A stderr that says it is a terminal (where a progress bar is shown)."""

    def isatty(self) -> bool:
        return True


class _Bar:
    def __init__(self, **kwargs):
        self.kwargs, self.updates, self.closed = kwargs, [], False

    def update(self, n: int = 1) -> None:
        self.updates.append(n)

    def close(self) -> None:
        self.closed = True


def test_progress_bar_counts_the_prompts_and_obeys_its_switch(tmp_path, monkeypatch):
    """One bar over the prompts (not a log line per shard), advanced after every generate call; a rerun
    starts it at the prompts already drawn; rejection.progress=false switches it off."""
    import cj2.curation.rejection as rejection

    bars: list[_Bar] = []
    monkeypatch.setattr(rejection, "progress_bar", lambda **kw: bars.append(_Bar(**kw)) or bars[-1])
    prompts = _sim_prompts(10)

    def run(**kwargs):
        return rejection_sample(
            prompts,
            SimulatedTeacher(),
            SamplingParams(seed=0),
            draws=2,
            folder_root=tmp_path,
            generator_config=SIM,
            shard_size=4,
            **kwargs,
        )

    first = run()
    assert len(bars) == 1 and bars[0].closed
    assert bars[0].kwargs["total"] == 10 and bars[0].kwargs["initial"] == 0 and bars[0].kwargs["enabled"]
    assert sum(bars[0].updates) == 10 and len(bars[0].updates) >= first.shards_drawn == 3
    again = run(progress=False)
    assert again.cache_hit and bars[1].kwargs["initial"] == 10 and bars[1].updates == []
    assert bars[1].kwargs["enabled"] is False


def test_progress_bar_goes_to_a_terminal_stderr_only(tmp_path, monkeypatch):
    """The real bar: written to stderr when it is a TTY (the final count shown), nothing when the switch is
    off or stderr is a file or pipe (CI logs)."""
    prompts = _sim_prompts(6)
    for i, (stream, progress, shown) in enumerate(
        [(_TTY(), True, True), (_TTY(), False, False), (io.StringIO(), True, False)]
    ):
        monkeypatch.setattr(sys, "stderr", stream)
        rejection_sample(
            prompts,
            SimulatedTeacher(),
            SamplingParams(seed=0),
            draws=2,
            folder_root=tmp_path / str(i),
            generator_config=SIM,
            shard_size=4,
            name="rft",
            progress=progress,
        )
        text = stream.getvalue()
        assert ("6/6" in text and "rft" in text and "prompt" in text) == shown, (i, text)


def test_curation_passes_rejection_progress_through(tmp_path, monkeypatch):
    """python -m cj2.curate's switch: rejection.progress (default true)."""
    import cj2.curation.pipeline as pipeline
    import cj2.curation.settings as settings

    seen = []
    real = settings.rejection_sample
    monkeypatch.setattr(
        settings, "rejection_sample", lambda *a, **k: seen.append(k["progress"]) or real(*a, **k)
    )
    for rcfg in ({"progress": False}, {}):
        pipeline._run_rejection(
            "rft",
            _sim_prompts(4),
            SimulatedTeacher(),
            SIM,
            SamplingParams(seed=0),
            rcfg,
            tmp_path / "cache",
            tmp_path / "out",
            m=1,
        )
    assert seen == [False, True]
