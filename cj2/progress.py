"""Progress bars for long work (rejection sampling, the in-training generated evaluation).

One rule for every bar: it goes to stderr, shows rate and ETA, and is off when its switch is off or when
stderr is not a terminal (CI logs and redirected output stay free of carriage-return lines).
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(*, total: int, desc: str, unit: str, enabled: bool = True, initial: int = 0) -> Any:
    """A :class:`tqdm.tqdm` bar on stderr over ``total`` units; disabled when ``enabled`` is false, and
    (``disable=None``) when stderr is not a TTY. Advance it with ``update(n)``, end it with ``close()``."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        disable=None if enabled else True,
        dynamic_ncols=True,
        mininterval=1.0,
    )


__all__ = ["progress_bar"]
