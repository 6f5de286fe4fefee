"""Judge data: the schema, public-dataset adapters, records, templates, built-in tasks, batching."""

from cj2.data.adapters import ADAPTERS, iter_items, load_items
from cj2.data.io import DataError, SkipRecord
from cj2.data.schema import BestOfNItem, PairwiseItem, PointwiseItem, PreferenceRecord, TrainRecord

__all__ = [
    "ADAPTERS",
    "BestOfNItem",
    "DataError",
    "PairwiseItem",
    "PointwiseItem",
    "PreferenceRecord",
    "SkipRecord",
    "TrainRecord",
    "iter_items",
    "load_items",
]
