"""The one wandb helper of the entries (cj2.runtime.wandb_run / log_summary): no run when logger.wandb is
off, the run finished on leaving (also after an error), numbers logged and every entry summarised."""

from __future__ import annotations

import pytest

import cj2.runtime as runtime


class _Run:
    def __init__(self):
        self.logged: list[dict] = []
        self.summary: dict = {}

    def log(self, values: dict) -> None:
        self.logged.append(values)


def test_wandb_run_finishes_and_log_summary_splits_numbers_from_strings(tmp_path, monkeypatch):
    import wandb

    run, started, finished = _Run(), [], []

    def start(cfg, out, *, config, **fields):
        if not runtime.wandb_section(cfg).get("enabled", False):
            return None
        started.append(fields)
        return run

    monkeypatch.setattr(runtime, "start_wandb", start)
    monkeypatch.setattr(wandb, "finish", lambda: finished.append(True))
    with runtime.wandb_run({"logger": {"wandb": {"enabled": False}}}, tmp_path, config={}) as off:
        assert off is None
    assert started == [] and finished == []
    on = {"logger": {"wandb": {"enabled": True}}}
    with pytest.raises(RuntimeError, match="mid-run"):
        with runtime.wandb_run(on, tmp_path, config={}, job_type="refine") as live:
            runtime.log_summary(live, {"acc": 0.5, "n": 3, "protocol/order": "both"})
            raise RuntimeError("mid-run")
    assert started == [{"job_type": "refine"}] and finished == [True]
    assert run.logged == [{"acc": 0.5, "n": 3}]
    assert run.summary == {"acc": 0.5, "n": 3, "protocol/order": "both"}
