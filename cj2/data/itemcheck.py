"""Checks of labelled pairs that are valid one by one but wrong as a set or for the judge that reads them.

:func:`item_notes` returns the report notes (and logs them as warnings) for a benchmark about to be judged:

* a ``tie`` label the judge's template cannot say (its format has no tie verdict): such an item is scored
  under strict accuracy like any other, so it counts as wrong whatever the judge answers -- reported, with
  the count, so the accuracy is read knowing it;
* a pair whose two responses are identical but whose label is ``A`` or ``B``: no judge can tell them apart,
  the label is probably a mistake in the data;
* a predictions file (``judge=predictions``) with rows for ids the benchmark does not have: they are not
  scored, and a typo in an id would otherwise be silent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

_EXAMPLES = 5


def _some(ids: Sequence[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_EXAMPLES])
    return shown + (f", ... ({len(ids)} in all)" if len(ids) > _EXAMPLES else "")


def untemplatable_ties(items: Sequence[Any], format: str) -> list[str]:
    """Ids of items labelled ``tie`` where ``format`` has no tie verdict."""
    from cj2.verdict import labels_for

    if "tie" in labels_for(format):
        return []
    return [it.id for it in items if getattr(it, "label", None) == "tie"]


def identical_but_labelled(items: Sequence[Any]) -> list[str]:
    """Ids of pairs whose two responses are the same text (ignoring surrounding space) but labelled A or B."""
    return [
        it.id
        for it in items
        if getattr(it, "label", None) in ("A", "B")
        and str(it.response_a).strip() == str(it.response_b).strip()
    ]


def unknown_prediction_ids(prediction_ids: Sequence[str], items: Sequence[Any]) -> list[str]:
    """Ids a predictions file has rows for that no benchmark item has (in file order, each once)."""
    known = {str(it.id) for it in items}
    return list(dict.fromkeys(i for i in prediction_ids if i not in known))


def item_notes(
    all_items: Sequence[Any],
    items: Sequence[Any],
    template: Any,
    recorded: tuple[str, Sequence[str]] | None = None,
) -> list[str]:
    """The notes (report and log) on ``items`` (those judged) of a benchmark whose items are ``all_items``,
    for ``template``; ``recorded``: the file and the item ids of a recorded-predictions judge, if that is
    the judge (:func:`cj2.evaluation.backends.recorded_ids`)."""
    notes = []
    ties = untemplatable_ties(items, template.format)
    if ties:
        notes.append(
            f"{len(ties)} item(s) are labelled tie, which template {template.name!r} (format "
            f"{template.format!r}) cannot answer: strict accuracy counts each as wrong ({_some(ties)})"
        )
    same = identical_but_labelled(items)
    if same:
        notes.append(
            f"{len(same)} pair(s) have two identical responses but the label A or B: no judge can tell them "
            f"apart; check the data ({_some(same)})"
        )
    if recorded is not None:
        path, ids = recorded
        unknown = unknown_prediction_ids(ids, all_items)
        if unknown:
            notes.append(
                f"the predictions file {path} has rows for {len(unknown)} id(s) the benchmark does not have, "
                f"not scored ({_some(unknown)})"
            )
    for note in notes:
        log.warning("%s", note)
    return notes
