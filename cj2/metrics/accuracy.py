"""Verdict accuracy of a judge: strict, lenient, parse rate and a per-domain breakdown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from cj2.metrics._base import JudgeMetric, check_lengths, group_sum, ratio


class JudgeAccuracy(JudgeMetric):
    """Accuracy of parsed verdicts against gold labels.

    ``update(pred, target, domain=None)`` takes parsed verdicts (``str``, or ``None`` where the parser found
    no verdict) and gold labels (``str``). ``compute()`` returns fractions in [0, 1]:

    * ``accuracy``: strict, an unparsed verdict counts as wrong (denominator: all items);
    * ``accuracy_parsed``: lenient, unparsed verdicts are excluded (denominator: parsed items; NaN if none);
    * ``parse_rate``, ``n`` and ``n_parsed``;
    * ``accuracy/<domain>`` (strict) and ``n/<domain>`` for every domain.

    Domains, two designs that both reduce correctly under DDP:

    * ``domains`` given at construction: per-domain ``sum`` states in that order; every listed domain is
      reported (NaN when it has no items) and an unlisted domain in ``update`` is an error.
    * ``domains=None``: each item's domain is kept as a ``cat`` state of name ids (see
      :mod:`cj2.metrics._base`), so domains first seen on another rank are still reported.
    """

    higher_is_better = True

    def __init__(self, domains: Sequence[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.domains = list(domains) if domains is not None else None
        if self.domains is not None and len(set(self.domains)) != len(self.domains):
            raise ValueError(f"domains must be unique, got {self.domains}")
        zero = torch.tensor(0, dtype=torch.int64)
        for name in ("n", "n_parsed", "n_correct"):
            self.add_state(name, default=zero.clone(), dist_reduce_fx="sum")
        if self.domains is not None:
            self._domain_index = {d: i for i, d in enumerate(self.domains)}
            zeros = torch.zeros(len(self.domains), dtype=torch.int64)
            self.add_state("domain_n", default=zeros.clone(), dist_reduce_fx="sum")
            self.add_state("domain_correct", default=zeros.clone(), dist_reduce_fx="sum")
        else:
            self._add_cat_state("domain_id", torch.int64)
            self._add_cat_state("domain_correct_items", torch.int64)
            self._add_name_state()

    def update(
        self, pred: Sequence[str | None], target: Sequence[str], domain: Sequence[str] | None = None
    ) -> None:
        check_lengths(pred=pred, target=target, domain=domain)
        for i, t in enumerate(target):
            if not isinstance(t, str):
                raise ValueError(f"target[{i}] must be a label string, got {t!r}")
        parsed = torch.tensor([p is not None for p in pred], dtype=torch.int64)
        correct = torch.tensor([p is not None and p == t for p, t in zip(pred, target)], dtype=torch.int64)
        self.n += len(pred)
        self.n_parsed += parsed.sum().to(self.n_parsed.device)
        self.n_correct += correct.sum().to(self.n_correct.device)
        if domain is None:
            return
        if self.domains is not None:
            unknown = sorted({d for d in domain if d not in self._domain_index})
            if unknown:
                raise ValueError(f"domain(s) {unknown} are not among the metric's domains {self.domains}")
            index = torch.tensor(
                [self._domain_index[d] for d in domain], dtype=torch.int64, device=self.device
            )
            self.domain_n.index_add_(0, index, torch.ones_like(index))
            self.domain_correct.index_add_(0, index, correct.to(self.device))
        else:
            self._append("domain_id", self._ids(domain, "domain"))
            self._append("domain_correct_items", correct)

    def compute(self) -> dict[str, Tensor]:
        n, n_parsed, n_correct = int(self.n), int(self.n_parsed), int(self.n_correct)
        out = {
            "accuracy": ratio(n_correct, n),
            "accuracy_parsed": ratio(n_correct, n_parsed),
            "parse_rate": ratio(n_parsed, n),
            "n": torch.tensor(n),
            "n_parsed": torch.tensor(n_parsed),
        }
        if self.domains is not None:
            for i, d in enumerate(self.domains):
                out[f"accuracy/{d}"] = ratio(int(self.domain_correct[i]), int(self.domain_n[i]))
                out[f"n/{d}"] = self.domain_n[i].clone()
        else:
            ids = self._cat("domain_id")
            if len(ids):
                names = self._names()
                correct = self._cat("domain_correct_items")
                uniq, n_dom = group_sum(ids, torch.ones_like(ids))
                _, c_dom = group_sum(ids, correct)
                for key, nd, cd in sorted(
                    zip(uniq.tolist(), n_dom.tolist(), c_dom.tolist()), key=lambda r: names[r[0]]
                ):
                    out[f"accuracy/{names[key]}"] = ratio(cd, nd)
                    out[f"n/{names[key]}"] = torch.tensor(nd)
        return out
