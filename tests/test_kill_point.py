"""cj2.testing: the test-only kill points fire exactly at the k-th event of the named point, and only
there."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from cj2.testing import ENV, kill_callbacks, kill_point, kill_target

_COUNT = (
    "from cj2.testing import kill_point\n"
    "for i in range(1, 6):\n"
    "    kill_point('p', {n})\n"
    "    print(i, flush=True)\n"
)


def _child(spec: str | None, n: int = 1) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != ENV}
    if spec is not None:
        env[ENV] = spec
    return subprocess.run(
        [sys.executable, "-c", _COUNT.format(n=n)], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_named_point_kills_at_its_kth_event_and_others_never():
    killed = _child("p:3")
    assert killed.returncode == -signal.SIGKILL and killed.stdout.split() == ["1", "2"]
    assert "SIGKILL at p:3" in killed.stderr
    assert _child("p:4", n=2).stdout.split() == ["1"]  # counts events of n: 2, then 4 >= 4
    for spec in (None, "", "q:1", "p:6"):
        done = _child(spec)
        assert done.returncode == 0 and done.stdout.split() == ["1", "2", "3", "4", "5"], spec


def test_unset_is_a_no_op_and_a_malformed_spec_is_refused(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    kill_point("p")
    assert kill_target("p") is None and kill_callbacks() == []
    monkeypatch.setenv(ENV, "evaluate.rows:7")
    assert kill_target("evaluate.rows") == 7 and kill_target("train.step") is None and kill_callbacks() == []
    monkeypatch.setenv(ENV, "train.step:2")
    assert len(kill_callbacks()) == 1
    for bad in ("p", "p:", ":3", "p:0", "p:x"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(ValueError, match=ENV):
            kill_target("p")
