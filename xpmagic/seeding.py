"""``--seed N``: seed every random generator the run can use, including those of a library the
cell itself imports (``import torch`` on the cell's first line).

A library imported during the cell is seeded right after its import: seeding only what the
session had imported left such a first run unseeded, while its replay (which imports first) was
seeded, so the replay never matched.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import random
import sys
from collections.abc import Callable
from typing import Any


def _seed_numpy(numpy: Any, seed: int) -> None:
    numpy.random.seed(seed % (2**32))


def _seed_torch(torch: Any, seed: int) -> None:
    torch.manual_seed(seed)  # the CPU's generator and every GPU's


SEEDERS: dict[str, Callable[[Any, int], None]] = {"numpy": _seed_numpy, "torch": _seed_torch}


def seed_everything(seed: int) -> Callable[[], None]:
    """Seed `random` and the imported libraries now, and the others when the cell imports them.
    Returns what ends the waiting for imports (call it when the cell ends)."""
    random.seed(seed)
    waiting = set()
    for name, seeder in SEEDERS.items():
        module = sys.modules.get(name)
        if module is not None:
            seeder(module, seed)
        else:
            waiting.add(name)
    if not waiting:
        return lambda: None
    finder = _SeedOnImport(seed, waiting)
    sys.meta_path.insert(0, finder)
    return finder.stop


class _SeedOnImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find a waiting library, and has the
    library's own loader seed it once it has run."""

    def __init__(self, seed: int, waiting: set[str]):
        self.seed = seed
        self.waiting = waiting

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in self.waiting:
            return None
        self.waiting.discard(fullname)  # also keeps the lookup below from coming back here
        if not self.waiting:
            self.stop()
        spec = importlib.util.find_spec(fullname)
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run_module = loader.exec_module

        def exec_then_seed(module: Any) -> None:
            try:
                run_module(module)
            finally:
                vars(loader).pop("exec_module", None)  # the loader is the library's own again
            SEEDERS[fullname](module, self.seed)

        loader.exec_module = exec_then_seed  # on this loader only; the module keeps its real __loader__
        return spec

    def stop(self) -> None:
        if self in sys.meta_path:
            sys.meta_path.remove(self)
