"""Reading a routing rules file, with errors an operator can act on.

pydantic reports where a problem is as a path through the models, which includes steps the
operator never wrote (a single value wrapped in a list, a dict key marker). The message here
follows the path through the YAML as written and names the rule by its name and position.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from pacsflow.routing.rules import DUPLICATE_RULE_NAME, RuleSet

DEFAULT_RULES = Path(__file__).with_name("default_rules.yaml")
_MESSAGES = {  # pydantic's wording for the commonest problems, in a rules file's terms
    "missing": "required field is missing",
    "extra_forbidden": "unknown field (check its spelling and indentation)",
    "too_short": "must not be empty",
    "model_type": "expected a mapping of fields (name: value)",
}
_VALUE_ERROR_PREFIX = "Value error, "


class RoutingError(ValueError):
    """A rules file cannot be used; the message names the file, the rule and the field."""

    def __init__(self, path: Path, problems: Sequence[str]) -> None:
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            message = f"routing rules {path}: {self.problems[0]}"
        else:
            message = f"routing rules {path}:\n  " + "\n  ".join(self.problems)
        super().__init__(message)


class _UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice is an error instead of the last one winning."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Hashable] = set()
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice", key_node.start_mark
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_rules(path: Path | None = None) -> RuleSet:
    """Read and validate a rules file; ``None`` reads the default that ships with pacsflow."""
    path = DEFAULT_RULES if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise RoutingError(path, [f"cannot read the file: {reason}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RoutingError(path, [_yaml_problem(exc)]) from None
    if data is None:
        raise RoutingError(path, ["the file is empty; it needs version: 1 and a rules list"])
    if not isinstance(data, dict):
        raise RoutingError(path, ["expected a mapping with version: 1 and a rules list"])
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        raise RoutingError(path, [_problem(error, data) for error in exc.errors()]) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"


def _problem(error: ErrorDetails, data: dict[str, Any]) -> str:
    """One validation error as ``rule "name" (rules[i]), field a.b: message``."""
    loc = list(error["loc"])
    if error["type"] == DUPLICATE_RULE_NAME:
        loc = [*loc, error.get("ctx", {})["index"], "name"]
    path = _written_path(loc, data)
    message = _MESSAGES.get(error["type"], error["msg"].removeprefix(_VALUE_ERROR_PREFIX))
    where = []
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int):
        where.append(_rule_label(data, path[1]))
        path = path[2:]
    if path:
        where.append(f"field {_dotted(path)}")
    return f"{', '.join(where)}: {message}" if where else message


def _written_path(loc: Sequence[int | str], data: object) -> list[int | str]:
    """The steps of ``loc`` that exist in the YAML, plus a final missing field's name."""
    path: list[int | str] = []
    node: Any = data
    for step in loc:
        if _has_step(node, step):
            node = node[step]
        elif isinstance(node, dict) and isinstance(step, str) and step != "[key]":
            node = None  # a field that is missing: name it, there is nothing below
        else:
            continue  # a step pydantic added: a single value read as a list, a key marker
        path.append(step)
    return path


def _has_step(node: object, step: int | str) -> bool:
    if isinstance(node, dict):
        return step in node
    return isinstance(node, list) and isinstance(step, int) and 0 <= step < len(node)


def _rule_label(data: dict[str, Any], index: int) -> str:
    rule = data["rules"][index]
    name = rule.get("name") if isinstance(rule, dict) else None
    if isinstance(name, str) and name.strip():
        return f'rule "{name}" (rules[{index}])'
    return f"rule rules[{index}]"


def _dotted(path: Sequence[int | str]) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else f".{step}" if text else str(step)
    return text
