"""Content digests of lists, tuples, dicts and sets that hold data, not only plain values.

Pickling a container to hash it copies everything in it: ``{'train': frame, 'test': frame}`` of
ten million rows became a second copy of the data (and a quarter of a second) on every cell that
read it, and a set nested anywhere pickled in an order that changes with each process's string
hashing. Here each element is fingerprinted as it would be on its own (arrays and frames from a
sample, estimators by their parameters) and sets by their sorted element digests. Containers of
plain values keep their pickle digest (fingerprint.py), so what earlier runs recorded still
matches.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import xxhash

_PLAIN = (type(None), bool, int, float, complex, str, bytes)
ALL_ELEMENTS_UP_TO = 200  # a list or dict of more arrays, frames or models: this many, evenly spread
_CONTAINERS = (list, tuple, dict, set, frozenset)
_NESTING = (list, tuple, dict)  # what a plain container may hold besides plain values (not sets)


def _is_data(value: Any) -> bool:
    """An array, frame or model (numpy scalars have the shape ())."""
    return bool(getattr(value, "shape", ())) or hasattr(value, "get_params")


class TooLarge(Exception):
    """More elements than a cell's fingerprint may walk."""


class NoDigest(Exception):
    """An element that cannot be fingerprinted (a lock, a generator): nor can its container."""


def holds_only_plain_values(value: Any, most: int) -> bool:
    """True when every element (looked at up to ``most`` of them) is a plain value in nested
    lists, tuples and dicts; a nested set, or any other object, makes it False. Level by level,
    types checked once per level: a list of 10,000 floats takes 0.2 ms, not 6."""
    level, seen, visited = [value], 0, set()
    while level:
        ids = set(map(id, level))
        if len(ids) < len(level) or not visited.isdisjoint(ids):
            return False  # shared or holding itself: the walk below handles that
        visited |= ids
        items: list[Any] = []
        for container in level:
            if isinstance(container, dict):
                items += container.keys()
                items += container.values()
            else:
                items += container
        seen += len(items)
        if seen > most:
            return True  # as far as we looked; pickle as always
        kinds = set(map(type, items))
        if not all(map(_is_plain_type, kinds)):
            return False
        nested = any(issubclass(kind, _NESTING) for kind in kinds)
        level = [item for item in items if isinstance(item, _NESTING)] if nested else []
    return True


@lru_cache(maxsize=512)
def _is_plain_type(kind: type) -> bool:
    return issubclass(kind, _PLAIN) or issubclass(kind, _NESTING)


def container_digest(value: Any, leaf: Callable[[Any], Any], most: int) -> tuple[str, bool]:
    """(digest, sampled): the container's type and shape and each element's own fingerprint
    (``leaf``). Raises TooLarge past ``most`` elements, NoDigest for an element without one."""
    walk = _Walk(leaf, most)
    return walk.digest(value, ()), walk.sampled


class _Walk:
    def __init__(self, leaf: Callable[[Any], Any], most: int):
        self.leaf = leaf
        self.left = most
        self.sampled = False

    def digest(self, value: Any, path: tuple[int, ...]) -> str:
        if id(value) in path:
            return "cycle"  # a list holding itself: pickle's memo does the same
        path = (*path, id(value))
        hasher = xxhash.xxh3_128(f"{type(value).__module__}.{type(value).__qualname__}:{len(value)}".encode())
        if isinstance(value, dict):
            for key, item in self.spread(list(value.items()), list(value.values())):
                hasher.update(f"{self.element(key, path)}={self.element(item, path)};".encode())
        elif isinstance(value, (set, frozenset)):  # of hashable values: no arrays or frames in it
            for element in sorted(self.element(item, path) for item in value):
                hasher.update(f"{element};".encode())
        else:
            items = list(value)
            for item in self.spread(items, items):
                hasher.update(f"{self.element(item, path)};".encode())
        return hasher.hexdigest()

    def spread(self, items: list[Any], values: list[Any]) -> list[Any]:
        """2,000 small frames take a third of a second to fingerprint one by one: a sample, when
        more than ALL_ELEMENTS_UP_TO of the values are data (numbers and text are cheap)."""
        if len(items) <= ALL_ELEMENTS_UP_TO or sum(map(_is_data, values)) <= ALL_ELEMENTS_UP_TO:
            return items
        self.sampled = True
        return items[::len(items) // ALL_ELEMENTS_UP_TO + 1]

    def element(self, value: Any, path: tuple[int, ...]) -> str:
        self.left -= 1
        if self.left < 0:
            raise TooLarge
        if isinstance(value, _CONTAINERS):
            return self.digest(value, path)
        print_ = self.leaf(value)
        if print_.digest is None:
            raise NoDigest
        self.sampled = self.sampled or bool(print_.summary.get("sampled"))
        return f"{print_.kind}:{print_.digest}"
