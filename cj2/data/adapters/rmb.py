"""RMB (arXiv 2507.09104, Table 7: pairwise and best-of-N) and RM-Bench (3x3 style-variant pairs).

Both keep the chosen answer first (``meta["position_fixed"] = True``), as their own loaders do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cj2.data.adapters.fields import Fields, split_prompt, type_name
from cj2.data.schema import BestOfNItem, PairwiseItem

_LANGUAGE_NAMES = {"english": "en", "chinese": "zh"}


def _rmb_common(f: Fields, language: str) -> tuple[list[dict[str, str]], str, str, str, dict[str, Any]]:
    raw_turns = f.structured("conversation_input", list)
    conversation, question = split_prompt(
        f.messages("conversation_input", raw_turns), f, "conversation_input"
    )
    last = raw_turns[-1]
    if isinstance(last, dict) and isinstance(last.get("language"), str):
        # RMB tags each turn with a language name; map the two it uses to codes, keep any other name as is.
        language = _LANGUAGE_NAMES.get(last["language"].lower(), last["language"])
    category_path = f.text("category_path")
    parts = [p for p in category_path.split("/") if p]
    # "Pairwise_set/Helpfulness/Code/..." -> "Helpfulness": RMB reports help and harm separately.
    domain = parts[1] if len(parts) > 1 else (parts[0] if parts else "general")
    return conversation, question, language, domain, {"category_path": category_path}


def _rmb_answer(f: Fields, key: str) -> tuple[str, str, Any]:
    """(answer, llm_name, score or None) of one RMB ``{llm_name, answer[, score]}`` object."""
    sub = f.record(key)
    score = sub.row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise sub.fail("wrong_type", "score", f"expected a number, got {type_name(score)}")
    return sub.text("answer"), sub.text("llm_name"), score


def rmb_pairwise(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """RMB pairwise: ``pair_uid, conversation_input, chosen{llm_name, answer}, reject{...}, category_path``.

    RMB's own loader always puts the chosen answer first with winner A (arXiv 2507.09104, Sec. 5.3 notes);
    the adapter keeps that order (``meta["position_fixed"]``). ``domain`` is the second component of
    ``category_path`` (Helpfulness / Harmlessness).
    """
    f = Fields(row, path, line)
    conversation, question, language, domain, meta = _rmb_common(f, language)
    chosen, chosen_model, chosen_score = _rmb_answer(f, "chosen")
    rejected, rejected_model, rejected_score = _rmb_answer(f, "reject")
    meta.update(model_a=chosen_model, model_b=rejected_model, position_fixed=True)
    if chosen_score is not None or rejected_score is not None:  # RMB's annotation scores, kept for analysis
        meta.update(score_a=chosen_score, score_b=rejected_score)
    return [
        PairwiseItem(
            id=f.ident("pair_uid"),
            question=question,
            response_a=chosen,
            response_b=rejected,
            label="A",
            conversation=conversation,
            domain=domain,
            language=language,
            source="rmb",
            meta=meta,
        )
    ]


def rmb_bon(row: dict, *, path, line, language: str = "en") -> list[BestOfNItem]:
    """RMB best-of-N: ``bon_uid, conversation_input, bon_best{llm_name, answer}, loser_list, category_path``.

    A group counts as won only if the best response beats every loser (arXiv 2507.09104, Sec. 5.3 notes).
    """
    f = Fields(row, path, line)
    conversation, question, language, domain, meta = _rmb_common(f, language)
    best, best_model, _ = _rmb_answer(f, "bon_best")
    losers_raw = f.structured("loser_list", list)
    if not losers_raw:
        raise f.fail("wrong_type", "loser_list", "expected a non-empty list of {llm_name, answer}")
    losers, loser_models = [], []
    for i, loser in enumerate(losers_raw):
        # Give each loser its own field name ("loser_list[2].answer") for errors.
        answer, model, _ = _rmb_answer(Fields({f"loser_list[{i}]": loser}, path, line), f"loser_list[{i}]")
        losers.append(answer)
        loser_models.append(model)
    meta.update(best_model=best_model, loser_models=loser_models)
    return [
        BestOfNItem(
            id=f.ident("bon_uid"),
            question=question,
            best=best,
            losers=losers,
            conversation=conversation,
            domain=domain,
            language=language,
            source="rmb",
            meta=meta,
        )
    ]


def rmbench(row: dict, *, path, line, language: str = "en") -> list[PairwiseItem]:
    """RM-Bench: ``id, prompt, chosen, rejected`` with one response per style variant (3 each: concise,
    detailed plain, detailed markdown), and the domain as ``domain`` (``total_dataset.json``), ``subset``,
    or else the file name (``chat_filtered.json`` -> ``chat``, ``safety-refuse_filtered.json`` ->
    ``safety-refuse``).

    Expands to every (chosen style i, rejected style j) pair, ids ``f"{id}/c{i}r{j}"``; RM-Bench's
    easy/normal/hard accuracies are read off this matrix by the evaluator (:mod:`cj2.metrics.rmbench`).
    ``meta["rmbench_domain"]`` is the scoring domain (the two safety files are one domain, ``safety``).
    """
    from cj2.metrics.rmbench import rmbench_domain

    f = Fields(row, path, line)
    rid, prompt = f.ident("id"), f.text("prompt")
    if f.has("domain"):
        subset = f.text("domain")
    elif f.has("subset"):
        subset = f.text("subset")
    else:
        stem = Path(str(path)).name.split(".")[0]
        subset = stem.removesuffix("_filtered").removesuffix("_dataset")
    try:
        domain = rmbench_domain(subset)
    except ValueError as err:
        raise f.fail("unknown_label", "domain", str(err)) from None
    chosen, rejected = f.text_list("chosen"), f.text_list("rejected")
    if len(chosen) != 3 or len(rejected) != 3:
        raise f.fail(
            "inconsistent",
            "chosen" if len(chosen) != 3 else "rejected",
            f"expected 3 style variants each, got {len(chosen)} chosen and {len(rejected)} rejected",
        )
    return [
        PairwiseItem(
            id=f"{rid}/c{i}r{j}",
            question=prompt,
            response_a=c,
            response_b=r,
            label="A",
            domain=subset,
            language=language,
            source="rmbench",
            meta={
                "subset": subset,
                "rmbench_domain": domain,
                "chosen_style": i,
                "rejected_style": j,
                "position_fixed": True,
            },
        )
        for i, c in enumerate(chosen)
        for j, r in enumerate(rejected)
    ]
