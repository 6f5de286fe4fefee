"""Hydra search-path plugin of cj2: folders named in ``CJ2_CONFIG_PATH`` join the config search path.

A researcher keeps their own ``experiment/``, ``source/``, ``model/`` ... files in a folder of their own and
sets ``CJ2_CONFIG_PATH=/path/to/my_conf`` (plain paths; several separated by ``os.pathsep``); every entry
(``cj2-train``, ``cj2-curate``, ``cj2-evaluate``, ``cj2-moj`` and their ``python -m`` forms, and Hydra's
``compose`` API) then finds ``+experiment=my_run`` or ``source@catalog.mine=my_pairs`` there without editing
cj2. The folders are searched before cj2's own configs, so a file of the same name overrides cj2's. The
per-run equivalent is Hydra's own ``hydra.searchpath=[file:///path/to/my_conf]``.

Hydra discovers this module because it lives in the ``hydra_plugins`` namespace package.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

ENV_VAR = "CJ2_CONFIG_PATH"


def user_config_dirs(value: str | None = None) -> list[Path]:
    """The folders ``CJ2_CONFIG_PATH`` names, in order; a folder that does not exist is an error (a typo
    there would otherwise make ``+experiment=mine`` fail with a message about cj2's own configs)."""
    value = os.environ.get(ENV_VAR, "") if value is None else value
    dirs = []
    for part in value.split(os.pathsep):
        part = part.strip()
        if not part:
            continue
        path = Path(part).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"{ENV_VAR}: config folder {part!r} does not exist (resolved: {path})")
        dirs.append(path)
    return dirs


class Cj2SearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for path in reversed(user_config_dirs()):
            # Before the primary config's folder (cj2.conf): user files of the same name win.
            search_path.prepend(provider=f"cj2-user-config:{path}", path=f"file://{path}")
