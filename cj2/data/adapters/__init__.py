"""Adapters: public judge and reward datasets, read in their native layouts, into cj2's schema.

CompassJudger-2 trains on public judge data and public reward data (arXiv 2507.09104, Sec. 3.1) and is
evaluated on RewardBench, JudgeBench, RMB and JudgerBenchV2 (Sec. 4-5). Each of those ships its own
layout; an adapter turns one raw record into schema items (:mod:`cj2.data.schema`) and nothing else:


=================  =====================================================================================
``rewardbench``    RewardBench: ``prompt, chosen, rejected, subset, id`` (chosen is response A)
``rewardbench2``   RewardBench 2: ``id, prompt, chosen[], rejected[], num_correct, ..., subset`` (best-of-N)
``hh_rlhf``        HH-RLHF: ``chosen``/``rejected`` whole transcripts; the shared prefix is the dialogue
``chat_pairs``     UltraFeedback-binarized style: ``chosen``/``rejected`` as ``[{role, content}]``
``llmbar``         LLMBar: ``input, output_1, output_2, label`` (1 or 2)
``judgebench``     JudgeBench: ``pair_id, source, question, response_A, response_B, label`` ("A>B"/"B>A")
``pandalm``        PandaLM test set: ``instruction, input, response1, response2, annotator1..3``
``autoj``          Auto-J pairwise: ``scenario, prompt, "response 1", "response 2", label`` (0/1/2)
``rmb_pairwise``   RMB pairwise: ``pair_uid, conversation_input, chosen, reject, category_path``
``rmb_bon``        RMB best-of-N: ``bon_uid, conversation_input, bon_best, loser_list, category_path``
``rmbench``        RM-Bench: ``id, subset, prompt, chosen[3], rejected[3]`` -> the 3x3 pairs
``mtbench_human``  MT-Bench human judgments: ``question_id, model_a, model_b, winner, conversation_a/b,
                   turn``
``judgerbenchv2``  JudgerBenchV2 (Sec. 4): a folder of ``{Scenario}.json``
``pairwise``       cj2's own JSONL of :class:`PairwiseItem` fields
``pointwise``      cj2's own JSONL of :class:`PointwiseItem` fields
=================  =====================================================================================

An adapter is ``fn(row, *, path, line, **options) -> list[item]``. It raises
:class:`~cj2.data.io.DataError` naming file, line and field for a missing field, a wrong type, an
inconsistent record or an unknown label, and :class:`~cj2.data.io.SkipRecord` for a record a stated policy
leaves out (a PandaLM row whose three annotators all disagree). Every ``DataError`` raised here carries
``kind``, a stable reason code used for the skip counters.

Sources whose better answer always sits in one position (chosen/rejected layouts, RMB, RM-Bench) keep the
label ``"A"`` and set ``meta["position_fixed"] = True``; balancing positions is the mixture's job.

:func:`load_items` reads a file, a folder of files, a ``save_to_disk`` folder or a Hugging Face hub dataset
(``hf://org/name[@revision][:[config:]split]``, :mod:`cj2.data.hub`; ``pip install "cj2[hub]"``), runs an
adapter over every record, and fills a stats dict: ``read`` (records read), ``kept`` (items returned),
``skipped`` with ``skipped_by_reason``, and ``empty_responses``.

Where things live:

* :mod:`~cj2.data.adapters.fields`: typed access to a raw record's fields (every failure names file, line
  and field) and the dialogue splitting the layouts share;
* :mod:`~cj2.data.adapters.reward_pairs`: reward data with a fixed chosen position (RewardBench,
  RewardBench 2, HH-RLHF, chat-message pairs);
* :mod:`~cj2.data.adapters.labelled`: pairwise judge sets whose records carry the verdict (LLMBar,
  JudgeBench, PandaLM, Auto-J, MT-Bench human judgments, JudgerBenchV2);
* :mod:`~cj2.data.adapters.rmb`: RMB (pairwise and best-of-N) and RM-Bench;
* :mod:`~cj2.data.adapters.own`: cj2's own pairwise and pointwise JSONL;
* :mod:`~cj2.data.adapters.registry`: :data:`ADAPTERS`, the one name -> adapter table;
* :mod:`~cj2.data.adapters.loading`: reading sources (files, folders, hub ids), :func:`iter_items` and
  :func:`load_items`.

A new layout is a function in the module of its family (or a new module) plus one entry in
:data:`ADAPTERS`.
"""

from cj2.data.adapters.fields import Item
from cj2.data.adapters.labelled import autoj, judgebench, judgerbenchv2, llmbar, mtbench_human, pandalm
from cj2.data.adapters.loading import iter_items, load_items
from cj2.data.adapters.own import pairwise, pointwise
from cj2.data.adapters.registry import ADAPTERS
from cj2.data.adapters.reward_pairs import chat_pairs, hh_rlhf, rewardbench, rewardbench2
from cj2.data.adapters.rmb import rmb_bon, rmb_pairwise, rmbench
from cj2.data.io import DataError, SkipRecord

__all__ = [
    "ADAPTERS",
    "DataError",
    "Item",
    "SkipRecord",
    "autoj",
    "chat_pairs",
    "hh_rlhf",
    "iter_items",
    "judgebench",
    "judgerbenchv2",
    "llmbar",
    "load_items",
    "mtbench_human",
    "pairwise",
    "pandalm",
    "pointwise",
    "rewardbench",
    "rewardbench2",
    "rmb_bon",
    "rmb_pairwise",
    "rmbench",
]
