"""Reads a CloudFormation template and evaluates it the way CloudFormation would.

The local stack and the tests create their AWS resources from the same template the
cloud deploy uses (infra/cloudformation/fleetpulse.yaml), so the two cannot drift.
moto's own CloudFormation support cannot do it: it has no Timestream resources.

This is the part of CloudFormation the template uses, no more: the YAML short forms,
parameters with their defaults and constraints, conditions, `Ref`, `Fn::GetAtt`,
`Fn::Sub`, `Fn::If`, `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or`, `Fn::Join`,
`Fn::Select`, `Fn::Split` and the pseudo parameters; resources in dependency order; the
outputs. `Rules` are left to CloudFormation: locally, `Settings.from_env` checks the
same combinations of settings (and also accepts a token given directly).
Anything else is refused by name rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "infra" / "cloudformation" / "fleetpulse.yaml"


class TemplateError(ValueError):
    """The template or its parameters are not valid; the message says where."""


# -- loading -----------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags, read as their long form."""


def _short_form(loader: _Loader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:
        value = loader.construct_scalar(node)  # type: ignore[arg-type]
    if suffix in ("Ref", "Condition"):
        return {suffix: value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_Loader.add_multi_constructor("!", _short_form)


def loads(text: str) -> dict[str, Any]:
    """A template (YAML or JSON) as plain data, short forms expanded."""
    data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    if not isinstance(data, dict) or "Resources" not in data:
        raise TemplateError("not a CloudFormation template (no Resources)")
    return data


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> dict[str, Any]:
    return loads(Path(path).read_text())


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template at `path`, parsed once per version of the file. Do not modify it."""
    return _load_cached(str(path), path.stat().st_mtime_ns)


# -- evaluation --------------------------------------------------------------

NO_VALUE = object()  # AWS::NoValue: the property or list item disappears
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Created:
    """What a created resource answers to `Ref` and `Fn::GetAtt`."""

    ref: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Stack:
    """A template with its parameter values: conditions, resources and outputs.

    `pseudo` holds the pseudo parameters (`AWS::Region`, ...); a callable value is
    asked for only when the template uses it (the account id costs a call).
    """

    template: Mapping[str, Any]
    parameters: Mapping[str, str] = field(default_factory=dict)
    pseudo: Mapping[str, str | Callable[[], str]] = field(default_factory=dict)
    values: dict[str, Any] = field(init=False)
    _conditions: dict[str, bool] = field(init=False, default_factory=dict)
    _pseudo: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.values = resolve_parameters(self.template.get("Parameters", {}), self.parameters)

    # conditions

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            definitions = self.template.get("Conditions", {})
            if name not in definitions:
                raise TemplateError(f"unknown condition {name}")
            self._conditions[name] = bool(self._truth(definitions[name], f"Conditions.{name}"))
        return self._conditions[name]

    def _truth(self, expr: Any, where: str) -> bool:
        if not isinstance(expr, dict) or len(expr) != 1:
            raise TemplateError(f"{where}: a condition must be one function, got {expr!r}")
        [(name, arg)] = expr.items()
        if name == "Condition":
            return self.condition(arg)
        if name == "Fn::Equals":
            a, b = (self.resolve(x, {}, where) for x in arg)
            return str(a) == str(b)
        if name == "Fn::Not":
            return not self._truth(arg[0], where)
        if name == "Fn::And":
            return all(self._truth(x, where) for x in arg)
        if name == "Fn::Or":
            return any(self._truth(x, where) for x in arg)
        raise TemplateError(f"{where}: {name} is not a condition function")

    # resources

    def resources(self) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        """(logical id, type, unresolved properties) of every resource whose condition holds,
        each after every resource it refers to."""
        resources = self.template["Resources"]
        included = [
            name
            for name, body in resources.items()
            if "Condition" not in body or self.condition(body["Condition"])
        ]
        done: set[str] = set()
        visiting: list[str] = []

        def visit(name: str) -> Iterator[str]:
            if name in done:
                return
            if name in visiting:
                raise TemplateError(f"circular reference: {' -> '.join([*visiting, name])}")
            if name not in included:
                raise TemplateError(f"{visiting[-1]} refers to {name}, which is not created")
            visiting.append(name)
            body = resources[name]
            depends = body.get("DependsOn", [])
            for other in [*([depends] if isinstance(depends, str) else depends)]:
                yield from visit(other)
            for other in sorted(references(body.get("Properties", {})) & set(resources)):
                yield from visit(other)
            visiting.pop()
            done.add(name)
            yield name

        for name in included:
            for ready in visit(name):
                body = resources[ready]
                yield ready, body["Type"], body.get("Properties", {})

    # outputs

    def outputs(self, created: Mapping[str, Created]) -> dict[str, str]:
        """Every output whose condition holds, resolved against the created resources."""
        out = {}
        for name, body in self.template.get("Outputs", {}).items():
            if "Condition" in body and not self.condition(body["Condition"]):
                continue
            out[name] = _as_string(self.resolve(body["Value"], created, f"Outputs.{name}"))
        return out

    # intrinsic functions

    def resolve(self, value: Any, created: Mapping[str, Created], where: str = "") -> Any:
        """`value` with every intrinsic function evaluated; AWS::NoValue items removed."""
        if isinstance(value, list):
            items = [self.resolve(v, created, where) for v in value]
            return [v for v in items if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            [(key, arg)] = value.items()
            if key == "Ref" or key.startswith("Fn::"):
                return self._function(key, arg, created, where)
        fields = {k: self.resolve(v, created, f"{where}.{k}") for k, v in value.items()}
        return {k: v for k, v in fields.items() if v is not NO_VALUE}

    def _function(self, name: str, arg: Any, created: Mapping[str, Created], where: str) -> Any:
        if name == "Ref":
            return self._ref(arg, created, where)
        if name == "Fn::GetAtt":
            resource, attribute = arg
            return self._resource(resource, created, where).attributes_get(attribute, where)
        if name == "Fn::Sub":
            return self._sub(arg, created, where)
        if name == "Fn::If":
            condition, then, otherwise = arg
            chosen = then if self.condition(condition) else otherwise
            return self.resolve(chosen, created, where)
        if name in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
            return self._truth({name: arg}, where)
        if name == "Fn::Join":
            delimiter, items = arg
            return delimiter.join(_as_string(v) for v in self.resolve(items, created, where))
        if name == "Fn::Select":
            index, items = arg
            return self.resolve(items, created, where)[int(self.resolve(index, created, where))]
        if name == "Fn::Split":
            delimiter, text = arg
            return str(self.resolve(text, created, where)).split(delimiter)
        raise TemplateError(f"{where}: {name} is not supported here")

    def _ref(self, name: str, created: Mapping[str, Created], where: str) -> Any:
        if name == "AWS::NoValue":
            return NO_VALUE
        if name.startswith("AWS::"):
            return self._pseudo_value(name, where)
        if name in self.values:
            return self.values[name]
        return self._resource(name, created, where).ref

    def _pseudo_value(self, name: str, where: str) -> str:
        if name not in self._pseudo:
            if name not in self.pseudo:
                raise TemplateError(f"{where}: pseudo parameter {name} is not available")
            raw = self.pseudo[name]
            self._pseudo[name] = raw() if callable(raw) else raw
        return self._pseudo[name]

    def _resource(self, name: str, created: Mapping[str, Created], where: str) -> _Refs:
        if name not in created:
            raise TemplateError(f"{where}: {name} is not a parameter or a created resource")
        return _Refs(name, created[name])

    def _sub(self, arg: Any, created: Mapping[str, Created], where: str) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else arg
        local = {k: self.resolve(v, created, where) for k, v in variables.items()}

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in local:
                return _as_string(local[name])
            if "." in name and not name.startswith("AWS::"):
                resource, attribute = name.split(".", 1)
                return self._resource(resource, created, where).attributes_get(attribute, where)
            return _as_string(self._ref(name, created, where))

        return _SUB_VARIABLE.sub(replace, text)


@dataclass(frozen=True)
class _Refs:
    name: str
    created: Created

    @property
    def ref(self) -> str:
        return self.created.ref

    def attributes_get(self, attribute: str, where: str) -> str:
        if attribute not in self.created.attributes:
            raise TemplateError(f"{where}: {self.name} has no attribute {attribute}")
        return self.created.attributes[attribute]


def _as_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_as_string(v) for v in value)
    return str(value)


def references(value: Any) -> set[str]:
    """Names `value` refers to with Ref, Fn::GetAtt or Fn::Sub (parameters included)."""
    found: set[str] = set()
    if isinstance(value, list):
        for v in value:
            found |= references(v)
    elif isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                found.add(arg)
            elif key == "Fn::GetAtt":
                found.add(arg[0])
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                for name in _SUB_VARIABLE.findall(text):
                    if not name.startswith("!"):
                        found.add(name.split(".", 1)[0])
                if not isinstance(arg, str):
                    found |= references(arg[1])
            else:
                found |= references(arg)
    return found


def resolve_parameters(
    declared: Mapping[str, Mapping[str, Any]], given: Mapping[str, str]
) -> dict[str, Any]:
    """Parameter values: given or default, checked against the declared constraints."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            raw = str(given[name])
        elif "Default" in spec:
            raw = str(spec["Default"])
        else:
            raise TemplateError(f"parameter {name} has no value and no default")
        _check(name, spec, raw)
        kind = spec.get("Type", "String")
        values[name] = raw.split(",") if kind == "CommaDelimitedList" else raw
    return values


def _check(name: str, spec: Mapping[str, Any], raw: str) -> None:
    why = spec.get("ConstraintDescription")
    hint = f" ({why})" if why else ""
    allowed = spec.get("AllowedValues")
    if allowed is not None and raw not in [str(a) for a in allowed]:
        raise TemplateError(f"parameter {name}: {raw!r} is not one of {allowed}")
    pattern = spec.get("AllowedPattern")
    if pattern is not None and re.fullmatch(pattern, raw) is None:
        raise TemplateError(f"parameter {name}: {raw!r} does not match {pattern}{hint}")
    if "MinLength" in spec and len(raw) < int(spec["MinLength"]):
        raise TemplateError(f"parameter {name}: shorter than {spec['MinLength']}")
    if "MaxLength" in spec and len(raw) > int(spec["MaxLength"]):
        raise TemplateError(f"parameter {name}: longer than {spec['MaxLength']}")
    if spec.get("Type") == "Number":
        try:
            number = float(raw)
        except ValueError:
            raise TemplateError(f"parameter {name}: {raw!r} is not a number") from None
        if "MinValue" in spec and number < float(spec["MinValue"]):
            raise TemplateError(f"parameter {name}: {raw} is below {spec['MinValue']}")
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            raise TemplateError(f"parameter {name}: {raw} is above {spec['MaxValue']}")
