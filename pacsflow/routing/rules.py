"""The routing rules file as validated models: what to match in a new series, what to do then.

Every model forbids unknown fields and does not coerce types (``retries: "3"`` is an error),
so a misspelt or misplaced key stops the start instead of silently changing what a rule does.
Names are resolved here (SOP class names to UIDs) so that matching only compares strings.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Self, TypeVar
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from pacsflow.archive.ingest import SourceKind
from pacsflow.archive.projects import check_project_name
from pacsflow.routing.dicom_names import check_keyword, check_modality, resolve_sop_class
from pacsflow.settings import check_ae_title

DUPLICATE_RULE_NAME = "duplicate_rule_name"  # error type; its ctx holds the index to report
MAX_RETRIES = 100
# Airflow's DAG id syntax (airflow.utils.helpers.validate_key): checked here to catch typos early.
_DAG_ID = re.compile(r"[\w.-]{1,250}")


def _as_tuple(value: object) -> object:
    """Accept one value or a YAML list wherever a rule allows several values."""
    return tuple(value) if isinstance(value, list | tuple) else (value,)


def _check_rule_name(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    if value != value.strip():
        raise ValueError("must not start or end with spaces")
    return value


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


def _check_json(value: dict[str, Any]) -> dict[str, Any]:
    """The conf travels to Airflow as JSON; YAML dates and the like do not."""
    try:
        json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be plain JSON data (quote dates and times): {exc}") from None
    return value


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or " " in value:
        raise ValueError(f'"{value}" is not an http:// or https:// URL')
    if parts.fragment:
        raise ValueError("a DICOMweb URL has no #fragment")
    return value


def _check_plain_value(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("YAML read this as true/false (from yes/no/on/off): put it in quotes")
    if not isinstance(value, str | int | float):
        raise ValueError(
            "a header matcher is a text or number, {wildcard: ...}, {regex: ...} or a list of these"
        )
    return value


T = TypeVar("T")
Several = Annotated[tuple[T, ...], BeforeValidator(_as_tuple), Field(min_length=1)]
RuleName = Annotated[str, Field(max_length=128), AfterValidator(_check_rule_name)]
Modality = Annotated[str, AfterValidator(check_modality)]
SopClassUid = Annotated[str, AfterValidator(resolve_sop_class)]
AeTitle = Annotated[str, AfterValidator(check_ae_title)]
Keyword = Annotated[str, AfterValidator(check_keyword)]
PlainValue = Annotated[str | int | float, BeforeValidator(_check_plain_value)]
Regex = Annotated[str, AfterValidator(_check_regex)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ValueMatcher(_Strict):
    """One accepted value of a header attribute: exact, wildcard (``*``, ``?``) or regex.

    A plain YAML value is read as ``{equals: value}``; wildcards must be marked because ``*``
    and ``?`` are ordinary characters in many attributes.
    """

    equals: PlainValue | None = None
    wildcard: str | None = None
    regex: Regex | None = None

    @model_validator(mode="before")
    @classmethod
    def _plain_value(cls, data: object) -> object:
        return data if isinstance(data, dict) else {"equals": _check_plain_value(data)}

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        given = [self.equals, self.wildcard, self.regex]
        if sum(kind is not None for kind in given) != 1:
            raise ValueError("give exactly one of equals, wildcard, regex")
        return self


class Match(_Strict):
    """Conditions on a series; all given must hold, and within one condition any value may."""

    modality: Several[Modality] = ()
    sop_class: Several[SopClassUid] = ()
    calling_ae: Several[AeTitle] = ()
    called_ae: Several[AeTitle] = ()
    source: Several[Annotated[SourceKind, Field(strict=False)]] = ()
    headers: Annotated[dict[Keyword, Several[ValueMatcher]], Field(min_length=1)] = {}

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.model_fields_set:
            raise ValueError(
                "give at least one condition (modality, sop_class, calling_ae, called_ae, source,"
                " headers); to match every series, list every source"
            )
        return self


class Trigger(_Strict):
    """Start a DAG run; ``conf`` is merged into the run's conf."""

    dag_id: str
    conf: Annotated[dict[str, Any], AfterValidator(_check_json)] = {}

    @field_validator("dag_id")
    @classmethod
    def _check_dag_id(cls, value: str) -> str:
        if not _DAG_ID.fullmatch(value):
            raise ValueError(f'"{value}" is not a DAG id (letters, digits, _ . - only)')
        return value


class Forward(_Strict):
    """Send the series to one destination: a known remote AE (C-STORE) or a DICOMweb URL (STOW)."""

    dicom_ae: AeTitle | None = None
    dicomweb: Annotated[str, AfterValidator(_check_http_url)] | None = None
    retries: Annotated[int, Field(ge=0, le=MAX_RETRIES)] = 3

    @field_validator("dicom_ae")
    @classmethod
    def _no_wildcard(cls, value: str | None) -> str | None:
        if value is not None and ("*" in value or "?" in value):
            raise ValueError("a destination is one AE title, not a pattern")
        return value

    @model_validator(mode="after")
    def _one_destination(self) -> Self:
        if (self.dicom_ae is None) == (self.dicomweb is None):
            raise ValueError("give exactly one destination: dicom_ae or dicomweb")
        return self


class Action(_Strict):
    """What to do with a matching series: exactly one of ``trigger``, ``forward`` or
    ``project`` (put its study in that project)."""

    trigger: Trigger | None = None
    forward: Forward | None = None
    project: Annotated[str, AfterValidator(check_project_name)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if [self.trigger, self.forward, self.project].count(None) != 2:
            raise ValueError("give exactly one of trigger, forward, project")
        return self


class Rule(_Strict):
    """A named rule; ``stop`` ends evaluation after this rule when it matched."""

    name: RuleName
    description: str = ""
    enabled: bool = True
    match: Match
    actions: Annotated[list[Action], Field(min_length=1)]
    stop: bool = False


class RuleSet(_Strict):
    """A whole rules file; rules apply in the order written."""

    version: Literal[1]
    rules: list[Rule]

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, rules: list[Rule]) -> list[Rule]:
        first_index: dict[str, int] = {}
        for index, rule in enumerate(rules):
            if rule.name in first_index:
                raise PydanticCustomError(
                    DUPLICATE_RULE_NAME,
                    "duplicate rule name, already used by rules[{first}]",
                    {"index": index, "first": first_index[rule.name]},
                )
            first_index[rule.name] = index
        return rules
