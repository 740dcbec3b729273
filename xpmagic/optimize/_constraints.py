"""Hard constraints such as ``latency_ms < 50``, checked on a trial's metrics and params."""

from __future__ import annotations

import ast
import operator
from typing import Any

from ..errors import UsageError

_COMPARE = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
            ast.GtE: operator.ge, ast.Eq: operator.eq, ast.NotEq: operator.ne}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv}


class Constraint:
    """One ``NAME OP EXPR`` comparison; names are metrics or params of the trial."""

    def __init__(self, text: str):
        self.text = text
        try:
            tree = ast.parse(text, mode="eval").body
        except SyntaxError:
            raise UsageError(f"--constraint {text!r} is not an expression like 'latency_ms < 50'") from None
        if not (isinstance(tree, ast.Compare) and len(tree.ops) == 1 and type(tree.ops[0]) in _COMPARE):
            raise UsageError(f"--constraint {text!r} must be one comparison, like 'latency_ms < 50'")
        self._tree = tree
        self._check(tree.left)
        self._check(tree.comparators[0])

    def _check(self, node: ast.AST) -> None:
        if isinstance(node, (ast.Name, ast.Constant)):
            return
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            self._check(node.left)
            self._check(node.right)
            return
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            self._check(node.operand)
            return
        raise UsageError(f"--constraint {self.text!r}: only names, numbers and + - * / are allowed")

    def _value(self, node: ast.AST, values: dict[str, Any]) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise KeyError(node.id)
            return values[node.id]
        if isinstance(node, ast.UnaryOp):
            return -self._value(node.operand, values)
        return _ARITH[type(node.op)](self._value(node.left, values), self._value(node.right, values))

    def violation(self, values: dict[str, Any]) -> float:
        """0 when satisfied, else how far off (Optuna's convention: > 0 is infeasible).

        A name the trial did not log counts as a violation: feasibility was not shown.
        """
        try:
            left = self._value(self._tree.left, values)
            right = self._value(self._tree.comparators[0], values)
        except KeyError:
            return 1.0
        if _COMPARE[type(self._tree.ops[0])](left, right):
            return 0.0
        try:
            return max(abs(float(left) - float(right)), 1e-12)
        except (TypeError, ValueError):
            return 1.0
