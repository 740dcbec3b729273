"""What a cell touches: the names it reads and writes, and what it prints."""

from __future__ import annotations

import ast
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TextIO


@dataclass(frozen=True)
class NameUse:
    """Global names a cell reads before assigning them, and the ones it assigns."""

    loaded: frozenset[str]
    stored: frozenset[str]


class _FlowCollector(ast.NodeVisitor):
    """Walks a cell in execution order, so ``C = 1; f(C)`` does not read an old ``C``.

    Names bound earlier in the cell are not reads; names local to a function,
    lambda or comprehension are neither reads nor global writes.
    """

    def __init__(self) -> None:
        self.reads: set[str] = set()
        self.stored: set[str] = set()
        self._bound: set[str] = set()
        self._locals: list[set[str]] = []

    def _bind(self, name: str) -> None:
        if self._locals:
            self._locals[-1].add(name)
        else:
            self._bound.add(name)
            self.stored.add(name)

    def _read(self, name: str) -> None:
        if name in self._bound or any(name in scope for scope in self._locals):
            return
        self.reads.add(name)

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        else:
            self._bind(node.id)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.target, ast.Name):
            self._read(node.target.id)
        self.visit(node.value)
        self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_alias(self, node: ast.alias) -> None:
        self._bind((node.asname or node.name).partition(".")[0])

    def visit_Global(self, node: ast.Global) -> None:
        self.stored.update(node.names)  # a function that declares global may write it

    def _visit_scope(self, node: ast.AST, params: ast.arguments | None, body: list) -> None:
        for default in (params.defaults + [d for d in params.kw_defaults if d]) if params else []:
            self.visit(default)
        names = set()
        if params is not None:
            every = params.posonlyargs + params.args + params.kwonlyargs
            every += [a for a in (params.vararg, params.kwarg) if a is not None]
            names = {a.arg for a in every}
        self._locals.append(names)
        for item in body:
            self.visit(item)
        self._locals.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._visit_scope(node, node.args, node.body)
        self._bind(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_scope(node, node.args, [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        self._visit_scope(node, None, node.body)
        self._bind(node.name)

    def _visit_comprehension(self, node: ast.AST, results: list[ast.AST]) -> None:
        generators = node.generators  # type: ignore[attr-defined]
        self.visit(generators[0].iter)  # evaluated in the enclosing scope
        self._locals.append(set())
        for index, generator in enumerate(generators):
            if index:
                self.visit(generator.iter)
            self.visit(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for result in results:
            self.visit(result)
        self._locals.pop()

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        code = _magic_statement(node)
        if code is not None:
            try:
                self.visit(ast.parse(code))
            except SyntaxError:
                pass  # IPython reports it when the magic runs

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._visit_comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._visit_comprehension(node, [node.key, node.value])


# Line magics that run their argument as a statement of the cell (`%time y = f(x)` reads x, writes y).
_STATEMENT_MAGICS = frozenset({"time", "prun"})


def _magic_statement(call: ast.Call) -> str | None:
    """The statement of a transformed ``get_ipython().run_line_magic('time', 'y = f(x)')``."""
    func, args = call.func, call.args
    if not (isinstance(func, ast.Attribute) and func.attr == "run_line_magic" and len(args) >= 2):
        return None
    name, code = args[0], args[1]
    if (isinstance(name, ast.Constant) and name.value in _STATEMENT_MAGICS
            and isinstance(code, ast.Constant) and isinstance(code.value, str)):
        return code.value
    return None


@lru_cache(maxsize=512)
def name_use(python_source: str) -> NameUse:
    """Names used by plain Python source (cached: cells are re-run often)."""
    collector = _FlowCollector()
    collector.visit(ast.parse(python_source))
    return NameUse(frozenset(collector.reads), frozenset(collector.stored))


def cell_name_use(source: str, transform: Callable[[str], str]) -> NameUse:
    """Names used by a cell; IPython syntax (magics, !cmd) is transformed first."""
    try:
        return name_use(source)
    except SyntaxError:
        try:
            return name_use(transform(source))
        except SyntaxError:
            return NameUse(frozenset(), frozenset())


class TeeStream:
    """Writes through to the real stream and keeps a capped copy for the record."""

    def __init__(self, stream: TextIO, limit: int):
        self._stream = stream
        self._parts: list[str] = []
        self._room = limit
        self.truncated = False

    def write(self, text: str) -> int:
        if self._room > 0:
            kept = text[: self._room]
            self._parts.append(kept)
            self._room -= len(kept)
            if len(kept) < len(text):
                self.truncated = True
        elif text:
            self.truncated = True
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._stream.flush()

    def getvalue(self) -> str:
        text = "".join(self._parts)
        return text + "\n[... output truncated by xpmagic]" if self.truncated else text

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class ThreadRoutedStream:
    """Sends writes from registered threads to their own buffer, the rest to the stream."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._routes: dict[int, TeeStream] = {}

    def route(self, buffer: TeeStream) -> None:
        self._routes[threading.get_ident()] = buffer

    def unroute(self) -> None:
        self._routes.pop(threading.get_ident(), None)

    def write(self, text: str) -> int:
        buffer = self._routes.get(threading.get_ident())
        if buffer is not None:
            return buffer.write(text)
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Sink:
    """A stream that only keeps what the TeeStream in front of it caps."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


_install_lock = threading.Lock()


def routed_streams() -> tuple[ThreadRoutedStream, ThreadRoutedStream]:
    """Install (once) and return the routers in front of sys.stdout and sys.stderr."""
    with _install_lock:
        routers = []
        for attr in ("stdout", "stderr"):
            current = getattr(sys, attr)
            if not isinstance(current, ThreadRoutedStream):
                current = ThreadRoutedStream(current)
                setattr(sys, attr, current)
            routers.append(current)
        return routers[0], routers[1]


def capture_buffer(limit: int) -> TeeStream:
    """A capped buffer for a thread whose output must not reach the screen."""
    return TeeStream(_Sink(), limit)  # type: ignore[arg-type]
