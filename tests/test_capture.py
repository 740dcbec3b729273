"""Which names a cell reads and writes, in execution order."""

from __future__ import annotations

import pytest

from xpmagic.capture import name_use


@pytest.mark.parametrize("source, reads, writes", [
    ("C = 1\nf(C)", {"f"}, {"C"}),
    ("x = x + 1", {"x"}, {"x"}),
    ("x += 1", {"x"}, {"x"}),
    ("for i in data:\n    total = i", {"data"}, {"i", "total"}),
    ("squares = [v * k for v in values]", {"values", "k"}, {"squares"}),
    ("def f(a, b=default):\n    return a + b + g\nr = f(1)", {"default", "g"}, {"f", "r"}),
    ("import numpy as np\nnp.ones(3)", set(), {"np"}),
    ("with open(p) as fh:\n    text = fh.read()", {"open", "p"}, {"fh", "text"}),
    ("if (n := len(items)) > 3:\n    big = n", {"len", "items"}, {"n", "big"}),
    ("model.fit(X, y)", {"model", "X", "y"}, set()),
    ("f = lambda q: q + offset", {"offset"}, {"f"}),
])
def test_reads_are_names_used_before_the_cell_binds_them(source, reads, writes):
    use = name_use(source)
    assert use.loaded == reads and use.stored == writes
