"""cj2: train and evaluate LLM judges the CompassJudger-2 way (arXiv 2507.09104).

``import cj2`` stays light; :class:`cj2.Judge` (the one-line judge API, :mod:`cj2.judge`) loads on first use.
"""

from typing import Any

__all__ = ["Judge", "JudgeProtocol", "JudgeResult"]


def __getattr__(name: str) -> Any:
    if name in ("Judge", "JudgeProtocol", "JudgeResult"):
        from cj2 import judge

        return getattr(judge, name)
    raise AttributeError(f"module 'cj2' has no attribute {name!r}")
