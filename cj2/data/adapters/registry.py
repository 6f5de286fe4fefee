"""The one table of adapters: layout name -> adapter function (``fn(row, *, path, line, **options)``).

Adding a layout: write its adapter in the module of its family and add one entry here.
"""

from __future__ import annotations

from collections.abc import Callable

from cj2.data.adapters.labelled import autoj, judgebench, judgerbenchv2, llmbar, mtbench_human, pandalm
from cj2.data.adapters.own import pairwise, pointwise
from cj2.data.adapters.reward_pairs import chat_pairs, hh_rlhf, rewardbench, rewardbench2
from cj2.data.adapters.rmb import rmb_bon, rmb_pairwise, rmbench

ADAPTERS: dict[str, Callable[..., list]] = {
    "rewardbench": rewardbench,
    "rewardbench2": rewardbench2,
    "hh_rlhf": hh_rlhf,
    "chat_pairs": chat_pairs,
    "llmbar": llmbar,
    "judgebench": judgebench,
    "pandalm": pandalm,
    "autoj": autoj,
    "rmb_pairwise": rmb_pairwise,
    "rmb_bon": rmb_bon,
    "rmbench": rmbench,
    "mtbench_human": mtbench_human,
    "judgerbenchv2": judgerbenchv2,
    "pairwise": pairwise,
    "pointwise": pointwise,
}
