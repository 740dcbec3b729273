"""The code that binds a name a cell read: an import statement, or a notebook's own definition.

Cells mostly read modules, classes and functions that a plain cell at the top of the notebook
imported or defined. A run records that code (import lines, and the source of the functions and
classes the notebook defined, with what they in turn use), so a replay rebuilt from the records
alone (replay.py) can run it before the run's cell, without the plain cells.
"""

from __future__ import annotations

import ast
import inspect
import linecache
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .redaction import is_secret_variable, secret_values
from .settingsource import setting_source

_NOT_IMPORTABLE = frozenset({"__main__", "builtins", "__mp_main__"})
_NOTEBOOK_MODULES = frozenset({"__main__", "__mp_main__"})
_MAX_DEPTH = 5  # a helper's helpers, and so on: deep enough for notebooks, bounded for odd graphs
_MAX_DEFINITION_CHARS = 100_000  # every run that reads a definition keeps a copy of it


@dataclass
class Bindings:
    imports: list[str] = field(default_factory=list)  # "import numpy as np", sorted
    definitions: list[dict[str, str]] = field(default_factory=list)  # {name, source}, dependencies first
    # Data the definitions read (a helper using X): inputs of the cell as much as what it reads itself.
    data_read: list[str] = field(default_factory=list, compare=False)


def setup_code(bindings: list[Bindings]) -> str:
    """The recorded imports, then the notebook's functions and classes, each once, in the order
    the runs first needed them: what plain cells of the notebook did before the runs."""
    imports = dict.fromkeys(s for b in bindings for s in b.imports)
    definitions = dict.fromkeys(d["source"].rstrip("\n") for b in bindings for d in b.definitions)
    return "\n\n\n".join(part for part in ("\n".join(imports), "\n\n\n".join(definitions)) if part)


def bindings_of(run: Any) -> Bindings:
    """A recorded run's bindings (records.Run)."""
    return Bindings(list(run.imports), list(run.definitions))


def bindings_for(names: Iterable[str], namespace: dict[str, Any]) -> Bindings:
    """Import statements and notebook definitions that bind ``names`` (and the names those
    definitions use), with small constants (``N_FOLDS = 5``); other data is left out: lineage
    accounts for it."""
    found = Bindings()
    imports: set[str] = set()
    seen: set[str] = set()

    def visit(name: str, depth: int) -> None:
        if name in seen or name not in namespace or depth > _MAX_DEPTH:
            return
        seen.add(name)
        value = namespace[name]
        if not callable(value) and not isinstance(value, types.ModuleType):  # data: most names, kept cheap
            constant = constant_source(name, value)
            if constant is None and type(value).__module__.partition(".")[0] not in _DATA_MODULES:
                constant = rebuilt_setting(name, value, depth)
            if constant is not None:
                found.definitions.append({"name": name, "source": constant})
            elif depth > 0:
                found.data_read.append(name)
            return
        statement = _cached_import(name, value)
        if statement is not None:
            imports.add(statement)
            return
        source = definition_source(name, value)
        if source is not None:
            for used in sorted(_uses(value)):
                visit(used, depth + 1)
            found.definitions.append({"name": name, "source": source})

    def rebuilt_setting(name: str, value: Any, depth: int) -> str | None:
        """``cv = KFold(n_splits=5, ...)`` (settingsource.py), once its class is bound too."""
        if is_secret_variable(name):
            return None
        rebuilt = setting_source(name, value)
        if rebuilt is None or any(secret in rebuilt[0] for secret in secret_values()):
            return None
        source, cls = rebuilt
        statement = _cached_import(cls.__name__, cls)
        if statement is not None:
            imports.add(statement)
            return source
        definition = definition_source(cls.__name__, cls)  # a class the notebook defined
        if definition is None:
            return None
        for used in sorted(_uses(cls)):
            visit(used, depth + 1)
        if cls.__name__ not in seen:
            seen.add(cls.__name__)
            found.definitions.append({"name": cls.__name__, "source": definition})
        return source

    for name in sorted(names):
        visit(name, 0)
    found.imports = sorted(imports)
    return found


# -- imports -----------------------------------------------------------------------------------

_IMPORTS: dict[tuple[str, int], tuple[Any, str]] = {}  # (name, id) -> (value, statement)


def _cached_import(name: str, value: Any) -> str | None:
    """Modules and classes live as long as the session: look each up once (a cell runs this
    after a fit, with cold caches, where every microsecond shows)."""
    known = _IMPORTS.get((name, id(value)))
    if known is not None and known[0] is value:
        return known[1]
    statement = import_statement(name, value)
    if statement is not None:  # never holds on to anything else (a callable model, say)
        if len(_IMPORTS) > 10_000:
            _IMPORTS.clear()
        _IMPORTS[(name, id(value))] = (value, statement)
    return statement


def import_statement(name: str, value: Any) -> str | None:
    """``import numpy as np`` for np, ``from sklearn.svm import SVC`` for SVC, or None when the
    value is not something a module binds (data, or a function defined in the notebook)."""
    try:
        if isinstance(value, types.ModuleType):
            module = value.__name__
            return f"import {module}" if name == module else f"import {module} as {name}"
        return _attribute_import(name, value)
    except Exception:  # an object's own __getattr__ may raise anything
        return None


def _attribute_import(name: str, value: Any) -> str | None:
    module_name = getattr(value, "__module__", None)
    attribute = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(module_name, str) or module_name in _NOT_IMPORTABLE or not isinstance(attribute, str):
        return None  # data (instances have no __qualname__), or defined in the notebook
    if "." in attribute or "<" in attribute:
        return None  # a method or a nested function: no module binds it
    home = _public_home(module_name, attribute, value)
    if home is None:
        return None
    return f"from {home} import {attribute}" + ("" if name == attribute else f" as {name}")


def _public_home(module_name: str, attribute: str, value: Any) -> str | None:
    """The shortest loaded package path that binds the value: sklearn.linear_model rather
    than sklearn.linear_model._logistic, where the class is defined."""
    parts = module_name.split(".")
    for end in range(1, len(parts) + 1):
        module = sys.modules.get(".".join(parts[:end]))
        if module is not None and getattr(module, attribute, None) is value:
            return ".".join(parts[:end])
    return None


# -- constants ----------------------------------------------------------------------------------

_CONSTANT_TYPES = (bool, int, float, str, type(None))
_DATA_MODULES = frozenset({"numpy", "pandas", "builtins", "polars"})  # no settings objects: skip the look
_MAX_CONSTANT_CHARS = 1000


def constant_source(name: str, value: Any) -> str | None:
    """``SCALE = 2.0`` for a small literal, or None; never for a value that may be a secret."""
    if type(value) not in _CONSTANT_TYPES or is_secret_variable(name):
        return None
    text = repr(value)
    if len(text) > _MAX_CONSTANT_CHARS or any(secret in text for secret in secret_values()):
        return None
    try:
        if ast.literal_eval(text) != value:
            return None
    except (ValueError, SyntaxError):  # nan, inf
        return None
    return f"{name} = {text}"


# -- the notebook's own functions and classes ----------------------------------------------------

@dataclass(frozen=True)
class _Definition:
    source: str
    binds: str | None  # the one name the source binds, or None (a lambda inside a larger statement)
    uses: frozenset[str]  # every name it reads: globals, decorators, base classes, defaults


# Reading and parsing a definition costs ~0.3 ms: once per function body or class.
_DEFINITIONS: dict[Any, _Definition | None] = {}


def definition_source(name: str, value: Any) -> str | None:
    """The source that defines a function or class of the notebook under ``name``, or None."""
    definition = _definition(value)
    if definition is None or definition.binds != name or len(definition.source) > _MAX_DEFINITION_CHARS:
        return None
    return definition.source


def _uses(value: Any) -> frozenset[str]:
    definition = _definition(value)
    return frozenset() if definition is None else definition.uses


def _definition(value: Any) -> _Definition | None:
    try:
        if hasattr(value, "__wrapped__"):  # functools.wraps, lru_cache: the source has the decorator
            value = inspect.unwrap(value)
        if isinstance(value, types.FunctionType) and value.__module__ in _NOTEBOOK_MODULES:
            key, read = value.__code__, lambda: _function_source(value)
        elif isinstance(value, type) and value.__module__ in _NOTEBOOK_MODULES:
            key, read = value, lambda: _class_source(value)
        else:
            return None
        if key not in _DEFINITIONS:
            if len(_DEFINITIONS) > 10_000:  # classes redefined cell after cell: the old ones may go
                _DEFINITIONS.clear()
            source = read()
            _DEFINITIONS[key] = None if source is None else _parse(source, value)
        return _DEFINITIONS[key]
    except Exception:  # a class whose attributes raise, a cell no longer in linecache
        return None


def _function_source(function: types.FunctionType) -> str | None:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return None


def _class_source(cls: type) -> str | None:
    """inspect cannot find a class defined in a notebook cell (before Python 3.13). Its methods
    name the cell; a class without methods is looked for in the session's cells, newest first."""
    files = [member.__code__.co_filename for member in vars(cls).values()
             if isinstance(member, types.FunctionType) and _is_cell_file(member.__code__.co_filename)]
    if not files:  # no methods, or only generated ones (a dataclass's __init__ comes from "<string>")
        files = [name for name in reversed(list(linecache.cache)) if _is_cell_file(name)]
    for filename in files[:200]:
        source = _class_in(cls.__name__, "".join(linecache.getlines(filename)))
        if source is not None:
            return source
    return None


def _is_cell_file(filename: str) -> bool:
    # IPython's own cells, and ipykernel's (its cells are files named after their hash)
    return filename.startswith("<ipython-input-") or "/ipykernel_" in filename


def _class_in(name: str, cell: str) -> str | None:
    try:
        body = ast.parse(cell).body
    except SyntaxError:
        return None
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
            return "".join(cell.splitlines(keepends=True)[start:node.end_lineno])
    return None


def _parse(source: str, value: Any) -> _Definition | None:
    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None  # e.g. a lambda's line cut out of a larger expression
    binds = None
    if len(body) == 1:
        node = body[0]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds = node.name
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
              and isinstance(node.value, ast.Lambda)):
            binds = node.targets[0].id
    return _Definition(source, binds, frozenset(_code_globals(value) | _outer_names(body)))


def _code_globals(value: Any) -> set[str]:
    """The global names a function's code (or its class's methods) reads; its parameters and
    locals are not among them, so a helper's own X is not mistaken for the notebook's X."""
    codes = [value.__code__] if isinstance(value, types.FunctionType) else [
        member.__code__ for member in vars(value).values() if isinstance(member, types.FunctionType)]
    names: set[str] = set()
    while codes:
        code = codes.pop()
        names.update(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, types.CodeType)]
    return names


def _outer_names(body: list[ast.stmt]) -> set[str]:
    """Names read outside any function body: decorators, base classes, default values, a
    class's own statements."""
    names: set[str] = set()
    pending: list[ast.AST] = list(body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            pending += [*getattr(node, "decorator_list", []), *node.args.defaults,
                        *(d for d in node.args.kw_defaults if d is not None)]
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        pending += list(ast.iter_child_nodes(node))
    return names
