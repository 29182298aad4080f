"""Each condition kind matching and not matching, and how rules combine."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.uid import CTImageStorage, RTStructureSetStorage, SegmentationStorage

from pacsflow.archive.ingest import SourceKind
from pacsflow.routing import Match, RuleSet, SeriesFacts, matches, matching_actions
from pacsflow.routing.matching import wildcard_pattern
from tests.routing.helpers import instance_json, series


def match(**conditions: Any) -> Match:
    return Match.model_validate(conditions)


@pytest.mark.parametrize(
    ("modality", "expected"), [("CT", True), (["MR", "CT"], True), ("MR", False), (["PT"], False)]
)
def test_modality(modality: str | list[str], expected: bool) -> None:
    assert matches(match(modality=modality), series(modality="CT")) is expected


@pytest.mark.parametrize(
    "sop_class",
    [
        "Segmentation Storage",
        "SegmentationStorage",
        "segmentation storage",
        "1.2.840.10008.5.1.4.1.1.66.4",
        ["CT Image Storage", "Segmentation Storage"],
    ],
)
def test_sop_class_by_name_keyword_or_uid(sop_class: str | list[str]) -> None:
    condition = match(sop_class=sop_class)
    assert matches(condition, series(modality="SEG", sop_class_uid=SegmentationStorage))
    assert not matches(condition, series(modality="RTSTRUCT", sop_class_uid=RTStructureSetStorage))


def test_sop_class_matches_when_any_instance_has_it() -> None:
    instances = [instance_json(CTImageStorage), instance_json(SegmentationStorage)]
    facts = SeriesFacts.from_dicom_json(instances, source=SourceKind.STOW)
    assert matches(match(sop_class="SegmentationStorage"), facts)


def test_private_sop_class_uid() -> None:
    facts = series(sop_class_uid="1.2.826.0.1.3680043.2.1125.1.9")
    assert matches(match(sop_class="1.2.826.0.1.3680043.2.1125.1.9"), facts)


@pytest.mark.parametrize(
    ("source", "expected"),
    [("dimse", True), (["stow", "dimse"], True), ("stow", False), ("workflow", False)],
)
def test_source(source: str | list[str], expected: bool) -> None:
    assert matches(match(source=source), series(source=SourceKind.DIMSE)) is expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("CT_SCANNER1", True),
        ("CT_*", True),
        ("CT_SCANNER?", True),
        ("*", True),
        (["MR_*", "CT_*"], True),
        ("ct_*", False),  # AE titles are case-sensitive
        ("CT_SCANNER", False),  # no wildcard: the whole title
        ("CT_SCANNER??", False),  # ? is exactly one character
        ("MR_*", False),
    ],
)
def test_calling_ae(pattern: str | list[str], expected: bool) -> None:
    assert matches(match(calling_ae=pattern), series(calling_ae="CT_SCANNER1")) is expected


def test_called_ae() -> None:
    facts = series(called_ae="PACSFLOW  ")  # trailing padding is not significant
    assert matches(match(called_ae="PACSFLOW"), facts)
    assert matches(match(called_ae="PACS*"), facts)
    assert not matches(match(called_ae="RESEARCH"), facts)


def test_ae_conditions_do_not_match_when_the_source_has_no_ae() -> None:
    facts = series(source=SourceKind.STOW, calling_ae="", called_ae="")
    assert not matches(match(calling_ae="CT_*"), facts)


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ("CHEST", True),
        (["ABDOMEN", "CHEST"], True),
        ({"wildcard": "CH*"}, True),
        ({"wildcard": "CH?ST"}, True),
        ({"regex": "CHE[S]T"}, True),
        ({"equals": "CHEST"}, True),
        ([{"regex": "HEAD"}, {"wildcard": "*EST"}], True),
        ("chest", False),  # case-sensitive
        ("CH*", False),  # a plain value is exact: * only with {wildcard: ...}
        ({"wildcard": "ch*"}, False),
        ({"regex": "HES"}, False),  # the whole value must match
        ({"regex": ".*HES.*"}, True),
        ({"regex": "(?i)chest"}, True),
    ],
)
def test_header_text(matcher: object, expected: bool) -> None:
    facts = series(BodyPartExamined="CHEST ")
    assert matches(match(headers={"BodyPartExamined": matcher}), facts) is expected


@pytest.mark.parametrize(
    ("matcher", "expected"),
    [
        ("AXIAL", True),  # any of a multi-valued attribute's values
        ("ORIGINAL", True),
        ({"wildcard": "PRI*"}, True),
        ({"regex": "AX.*"}, True),
        ("DERIVED", False),
        ("ORIGINAL\\PRIMARY\\AXIAL", False),  # values are compared one by one
    ],
)
def test_header_multi_valued(matcher: object, expected: bool) -> None:
    facts = series(ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    assert matches(match(headers={"ImageType": matcher}), facts) is expected


@pytest.mark.parametrize(
    ("keyword", "value", "matcher", "expected"),
    [
        ("SeriesNumber", 5, 5, True),
        ("SeriesNumber", 5, "5", True),
        ("SeriesNumber", 5, 6, False),
        ("SeriesNumber", 12, {"wildcard": "1?"}, True),
        ("SliceThickness", "2.50", 2.5, True),
        ("SliceThickness", "2.50", {"regex": r"2\.5"}, True),
        ("SliceThickness", "2.50", "2.7", False),
    ],
)
def test_header_numbers(keyword: str, value: Any, matcher: object, expected: bool) -> None:
    facts = series(**{keyword: value})
    assert matches(match(headers={keyword: matcher}), facts) is expected


def test_header_person_name_uses_the_alphabetic_form() -> None:
    facts = series(PatientName="TEST^Anna")
    assert matches(match(headers={"PatientName": "TEST^Anna"}), facts)
    assert matches(match(headers={"PatientName": {"wildcard": "TEST^*"}}), facts)
    assert not matches(match(headers={"PatientName": "DOE^John"}), facts)


def test_header_absent_or_empty_attribute_does_not_match() -> None:
    assert not matches(match(headers={"BodyPartExamined": {"wildcard": "*"}}), series())
    facts = series(BodyPartExamined="")
    assert not matches(match(headers={"BodyPartExamined": {"wildcard": "*"}}), facts)


def test_all_conditions_must_hold() -> None:
    condition = match(modality="CT", source="dimse", headers={"BodyPartExamined": "CHEST"})
    assert matches(condition, series(modality="CT", BodyPartExamined="CHEST"))
    assert not matches(condition, series(modality="CT", BodyPartExamined="HEAD"))
    assert not matches(condition, series(modality="MR", BodyPartExamined="CHEST"))
    assert not matches(condition, series(source=SourceKind.STOW, BodyPartExamined="CHEST"))


def test_all_headers_must_hold() -> None:
    condition = match(headers={"BodyPartExamined": "CHEST", "ImageType": "ORIGINAL"})
    assert matches(condition, series(BodyPartExamined="CHEST", ImageType=["ORIGINAL"]))
    assert not matches(condition, series(BodyPartExamined="CHEST", ImageType=["DERIVED"]))


@pytest.mark.parametrize(
    ("wildcard", "text", "expected"),
    [
        ("A.B", "A.B", True),
        ("A.B", "AXB", False),  # regex characters are literal
        ("(x)+", "(x)+", True),
        ("*", "", True),
        ("?", "", False),
        ("A*Z", "A\nZ", True),
    ],
)
def test_wildcard_pattern(wildcard: str, text: str, expected: bool) -> None:
    assert (wildcard_pattern(wildcard).fullmatch(text) is not None) is expected


def ruleset(*rules: dict[str, Any]) -> RuleSet:
    return RuleSet.model_validate({"version": 1, "rules": list(rules)})


def rule(name: str, dag_id: str = "", **fields: Any) -> dict[str, Any]:
    fields.setdefault("match", {"modality": "CT"})
    return {"name": name, "actions": [{"trigger": {"dag_id": dag_id or name}}], **fields}


def triggered(rules: RuleSet, facts: SeriesFacts) -> list[tuple[str, str]]:
    found = matching_actions(rules, facts)
    return [(rule.name, action.trigger.dag_id) for rule, action in found if action.trigger]


def test_actions_in_rule_order() -> None:
    rules = ruleset(
        rule("first"),
        rule("other", match={"modality": "MR"}),
        {
            "name": "second",
            "match": {"modality": "CT"},
            "actions": [
                {"trigger": {"dag_id": "a"}},
                {"forward": {"dicom_ae": "RESEARCH"}},
                {"trigger": {"dag_id": "b"}},
            ],
        },
    )
    found = matching_actions(rules, series(modality="CT"))
    assert [(rule.name, action.trigger or action.forward) for rule, action in found] == [
        ("first", rules.rules[0].actions[0].trigger),
        ("second", rules.rules[2].actions[0].trigger),
        ("second", rules.rules[2].actions[1].forward),
        ("second", rules.rules[2].actions[2].trigger),
    ]


def test_stop_ends_evaluation_only_when_its_rule_matched() -> None:
    rules = ruleset(
        rule("mr-stops", match={"modality": "MR"}, stop=True),
        rule("ct-stops", stop=True),
        rule("after"),
    )
    assert triggered(rules, series(modality="CT")) == [("ct-stops", "ct-stops")]
    assert triggered(rules, series(modality="MR")) == [("mr-stops", "mr-stops")]


def test_disabled_rule_neither_matches_nor_stops() -> None:
    rules = ruleset(rule("off", enabled=False, stop=True), rule("on"))
    assert triggered(rules, series(modality="CT")) == [("on", "on")]


def test_no_rule_matches() -> None:
    assert matching_actions(ruleset(rule("ct")), series(modality="MR")) == []


def test_facts_from_dicom_json() -> None:
    instances = [
        instance_json(SegmentationStorage, Modality="SEG", BodyPartExamined="CHEST"),
        instance_json(SegmentationStorage, Modality="SEG"),
    ]
    facts = SeriesFacts.from_dicom_json(
        instances, source=SourceKind.DIMSE, calling_ae="WS1", called_ae="PACSFLOW"
    )
    assert facts.modality == "SEG"
    assert facts.sop_class_uids == {SegmentationStorage}
    assert facts.header is instances[0]
    assert (facts.source, facts.calling_ae, facts.called_ae) == (
        SourceKind.DIMSE,
        "WS1",
        "PACSFLOW",
    )


def test_facts_need_an_instance() -> None:
    with pytest.raises(ValueError, match="at least one instance"):
        SeriesFacts.from_dicom_json([], source=SourceKind.STOW)
