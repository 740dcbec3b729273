"""The search space: read from the cell's ``xp.param`` calls, edited by the person,
turned into Optuna distributions.

Reading the space before any trial runs lets the panel show parameters and planned
configurations. Arguments are literals, or expressions of what the notebook has defined
(``np.float64(1.0)``, ``low=LOW``), evaluated in its namespace as the trials will. Parameters
whose arguments use names the cell itself assigns are still sampled, define-by-run.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
from dataclasses import dataclass, field, replace
from typing import Any

from ..capture import name_use
from ..errors import UsageError
from ..localcode import scripts_run_by
from ..records import ParamSpec, param_value
from ..run import is_number, make_param_spec

_SPEC_KEYWORDS = ("low", "high", "log", "step", "choices")
_BUILTIN_NAMES = frozenset(dir(builtins))


class _Computed(Exception):
    """An argument the cell computes as it runs: known only when a trial declares the parameter."""


def params_in_cell(source: str, namespace: dict[str, Any] | None = None) -> dict[str, ParamSpec]:
    """ParamSpecs of every ``xp.param(...)`` call whose arguments are known before it runs."""
    return read_params(source, namespace)[0]


def read_params(source: str, namespace: dict[str, Any] | None = None) -> tuple[dict[str, ParamSpec], list[str]]:
    """(ParamSpecs of the ``xp.param`` calls whose arguments are literals or expressions of the
    notebook's names, the source of the calls whose arguments the cell computes itself)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {}, []
    assigned = name_use(source).stored  # the trial would see the cell's own values of these
    specs: dict[str, ParamSpec] = {}
    computed: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "param" and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "xp"):
            continue
        try:
            args = [_argument(a, namespace, assigned) for a in node.args]
            kwargs = {k.arg: _argument(k.value, namespace, assigned) for k in node.keywords if k.arg}
        except _Computed:
            computed.append(ast.unparse(node))
            continue  # sampled when the trial declares it
        if len(args) < 2 and "default" not in kwargs:
            continue
        name = args[0] if args else kwargs.get("name")
        default = args[1] if len(args) > 1 else kwargs.get("default")
        spec = make_param_spec(name, default, **{k: kwargs.get(k) for k in _SPEC_KEYWORDS
                                                 if k != "log"}, log=bool(kwargs.get("log", False)))
        specs[spec.name] = spec
    return specs, computed


def _argument(node: ast.expr, namespace: dict[str, Any] | None, assigned: set[str]) -> Any:
    """A literal, or an expression of names the notebook has defined and the cell does not
    assign (the trial would see the cell's own value), evaluated as the trial will."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if namespace is None or names & assigned or not names <= (namespace.keys() | _BUILTIN_NAMES):
        raise _Computed
    try:
        # The person's own expression, in their namespace, as every trial will evaluate it.
        return eval(compile(ast.Expression(node), "<xp.param>", "eval"), namespace)
    except Exception:
        raise _Computed from None


def optuna_choice(value: Any) -> Any:
    """A choice as Optuna keeps it: a tuple as its JSON text, since Optuna's storage would give it
    back as a list and then refuse the space as changed."""
    value = param_value(value)
    return json.dumps(list(value)) if isinstance(value, tuple) else value


def from_optuna(spec: ParamSpec | None, value: Any) -> Any:
    """A value Optuna returned, as the cell declared it (optuna_choice, undone)."""
    if spec is not None and spec.choices is not None and isinstance(value, str):
        for choice in spec.choices:
            if isinstance(choice, tuple) and optuna_choice(choice) == value:
                return choice
    return value


def _optuna_accepts(old: Any, new: Any) -> bool:
    """Whether Optuna takes ``new`` under a name its trials used with ``old``: a range may move,
    but choices may not change, nor the kind of distribution."""
    return type(old) is type(new) and getattr(old, "choices", None) == getattr(new, "choices", None)


def is_searchable(spec: ParamSpec) -> bool:
    return spec.choices is not None or (spec.low is not None and spec.high is not None)


def distribution(spec: ParamSpec) -> Any:
    """The Optuna distribution of a searchable parameter."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if spec.choices is not None:
        return CategoricalDistribution([optuna_choice(choice) for choice in spec.choices])
    integer = isinstance(spec.value, int) and not isinstance(spec.value, bool) and (
        float(spec.low).is_integer() and float(spec.high).is_integer()) and (
        spec.step is None or float(spec.step).is_integer())
    if integer:
        return IntDistribution(int(spec.low), int(spec.high), log=spec.log,
                               step=int(spec.step) if spec.step and not spec.log else 1)
    return FloatDistribution(float(spec.low), float(spec.high), log=spec.log,
                             step=None if spec.log or spec.step is None else float(spec.step))


@dataclass
class SearchSpace:
    """The parameters being searched, the ones the person fixed, and their edits."""

    specs: dict[str, ParamSpec]
    fixed: dict[str, Any]
    computed: list[str] = field(default_factory=list)  # xp.param calls known only when a trial runs them
    # Optuna refuses other choices (or another kind of distribution) under a name its trials used:
    # after such an edit the parameter goes to Optuna as `name@2`, `name@3`, ...
    optuna_names: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_cell(cls, source: str, namespace: dict[str, Any] | None = None) -> SearchSpace:
        """The xp.param calls of the cell, and of the scripts it runs with %run (read now)."""
        specs: dict[str, ParamSpec] = {}
        computed: list[str] = []
        for script in scripts_run_by(source, os.getcwd()):
            found, uses = read_params(script.source or "")  # a script has a namespace of its own
            specs.update(found)
            computed += uses
        found, uses = read_params(source, namespace)
        space = cls({**specs, **found}, {})
        space.computed = computed + uses
        return space

    def searchable(self) -> dict[str, ParamSpec]:
        return {n: s for n, s in self.specs.items() if is_searchable(s) and n not in self.fixed}

    def from_optuna(self, params: dict[str, Any]) -> dict[str, Any]:
        """A trial's parameters as the cell declared them."""
        named = {key.partition("@")[0]: value for key, value in params.items()}
        return {name: from_optuna(self.specs.get(name), value) for name, value in named.items()}

    def optuna_name(self, name: str) -> str:
        return self.optuna_names.get(name, name)

    def distributions(self) -> dict[str, Any]:
        return {self.optuna_name(name): distribution(spec) for name, spec in self.searchable().items()}

    def edit(self, name: str, *, low: float | None = None, high: float | None = None,
             log: bool | None = None, choices: list | None = None) -> None:
        """Change a parameter's range, scale or choices (for trials not yet started)."""
        spec = self.specs.get(name)
        if spec is None:
            raise UsageError(f"no parameter {name!r} in this study; parameters: {', '.join(self.specs)}")
        if choices is not None:
            if not choices:
                raise UsageError(f"{name}: give at least one choice")
            new = replace(spec, choices=tuple(param_value(c) for c in choices), low=None, high=None, log=False)
            if spec.value not in new.choices:
                new = replace(new, value=new.choices[0])
        elif spec.choices is not None and not is_number(spec.value):
            raise UsageError(f"{name} is chosen from {list(spec.choices)}, not searched in a range; "
                             f"give it other choices instead: xp.study(NAME).set_space({name!r}, choices=[...])")
        else:
            new = replace(spec, low=spec.low if low is None else low,
                          high=spec.high if high is None else high,
                          log=spec.log if log is None else log, choices=None)
            value = new.value
            if is_number(value) and new.low is not None:
                value = min(max(value, new.low), new.high)
                new = replace(new, value=type(spec.value)(value))
        make_param_spec(new.name, new.value, low=new.low, high=new.high, log=new.log,
                        step=new.step, choices=new.choices)  # validates, with a clear message
        if is_searchable(spec) and not _optuna_accepts(distribution(spec), distribution(new)):
            version = int(self.optuna_name(name).partition("@")[2] or 1) + 1
            self.optuna_names[name] = f"{name}@{version}"
        self.specs[name] = new
        self.fixed.pop(name, None)

    def check_queued(self, config: dict[str, Any]) -> None:
        """A configuration a person queues must fit the space as it is now (a later edit of the
        space moves it inside with clip(), and says so)."""
        searchable = self.searchable()
        for name, value in config.items():
            spec = searchable.get(name)
            if spec is None:
                continue
            if spec.choices is not None:
                if param_value(value) not in spec.choices:
                    raise UsageError(f"{name}={value!r} is not one of {list(spec.choices)}")
                continue
            if not is_number(value):
                raise UsageError(f"{name}={value!r} is not a number; {name} is searched in [{spec.low}, {spec.high}]")
            if isinstance(distribution(spec).low, int) and value != int(value):
                raise UsageError(f"{name}={value!r} is not a whole number; {name} is searched in whole numbers "
                                 f"from {spec.low} to {spec.high}")
            if not spec.low <= value <= spec.high:
                raise UsageError(f"{name}={value!r} is outside the search space [{spec.low}, {spec.high}]; "
                                 f"widen it first (%xp space STUDY {name} LOW HIGH, or the panel's space editor)")

    def clip(self, config: dict[str, Any]) -> dict[str, Any]:
        """A configuration someone queued, within the current space: a number outside its range
        moves to the nearest bound (Optuna would silently sample it instead)."""
        searchable, clipped = self.searchable(), {}
        for name, value in config.items():
            spec = searchable.get(name)
            if spec is not None and spec.choices is None and is_number(value):
                value = min(max(value, spec.low), spec.high)
                if isinstance(distribution(spec).low, int):
                    value = int(round(value))
            elif spec is not None and spec.choices is not None:
                if param_value(value) not in spec.choices:
                    continue  # Optuna samples it
                value = optuna_choice(value)
            clipped[self.optuna_name(name)] = value
        return clipped

    def widen_to(self, config: dict[str, Any]) -> list[str]:
        """Stretch ranges so the configuration lies inside; returns the parameters widened."""
        searchable, widened = self.searchable(), []
        for name, value in config.items():
            spec = searchable.get(name)
            if spec is None or spec.choices is not None or not isinstance(value, (int, float)) \
                    or isinstance(value, bool) or spec.low <= value <= spec.high:
                continue
            self.specs[name] = replace(spec, low=min(spec.low, value), high=max(spec.high, value))
            widened.append(name)
        return widened

    def fix(self, name: str, value: Any) -> None:
        value = param_value(value)
        spec = self.specs.get(name)
        if spec is None:
            raise UsageError(f"no parameter {name!r} in this study; parameters: {', '.join(self.specs)}")
        if spec.choices is not None and value not in spec.choices:
            raise UsageError(f"{name} can be fixed to one of {list(spec.choices)}, not {value!r}")
        if spec.choices is None and not is_number(value):
            raise UsageError(f"{name} is a number; it cannot be fixed to {value!r}")
        self.fixed[name] = value

    def unfix(self, name: str) -> None:
        self.fixed.pop(name, None)

    def to_dict(self) -> dict[str, Any]:
        return {"params": {n: s.to_dict() for n, s in self.specs.items()}, "fixed": self.fixed,
                "optuna_names": self.optuna_names}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpace:
        specs = {}
        for name, spec in data.get("params", {}).items():
            choices = spec.get("choices")
            specs[name] = ParamSpec(name, param_value(spec["value"]), spec.get("low"), spec.get("high"),
                                    bool(spec.get("log")), spec.get("step"),
                                    None if choices is None else tuple(param_value(c) for c in choices))
        return cls(specs, {name: param_value(value) for name, value in data.get("fixed", {}).items()},
                   optuna_names=dict(data.get("optuna_names", {})))

    def coerce(self, name: str, text: str) -> Any:
        """A value typed by the person, converted to the parameter's type."""
        spec = self.specs.get(name)
        if spec is None:
            raise UsageError(f"no parameter {name!r} in this study; parameters: {', '.join(self.specs)}")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text
        if isinstance(spec.value, bool) or spec.choices is not None:
            return value
        if isinstance(spec.value, int) and isinstance(value, (int, float)):
            return int(value) if float(value).is_integer() else value
        if isinstance(spec.value, float) and isinstance(value, (int, float)):
            return float(value)
        return value
