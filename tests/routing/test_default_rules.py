"""The rules file that ships: it loads, routes segmentations to radiomics, and teaches."""

from __future__ import annotations

import importlib.resources
import re
from pathlib import Path

from pydicom.uid import (
    CTImageStorage,
    EnhancedCTImageStorage,
    RTStructureSetStorage,
    SegmentationStorage,
)

from pacsflow.archive.ingest import SourceKind
from pacsflow.routing import DEFAULT_RULES, RuleSet, load_rules, matching_actions
from tests.routing.helpers import series, write_rules


def dag_ids(rules: RuleSet, modality: str, sop_class_uid: str) -> list[str]:
    facts = series(modality=modality, sop_class_uid=sop_class_uid, source=SourceKind.STOW)
    found = matching_actions(rules, facts)
    return [action.trigger.dag_id for _rule, action in found if action.trigger is not None]


def test_default_is_used_without_a_path() -> None:
    assert load_rules() == load_rules(DEFAULT_RULES)


def test_default_ships_inside_the_package() -> None:
    resource = importlib.resources.files("pacsflow.routing").joinpath("default_rules.yaml")
    assert resource.read_text(encoding="utf-8") == DEFAULT_RULES.read_text(encoding="utf-8")


def test_segmentations_trigger_radiomics() -> None:
    rules = load_rules()
    assert dag_ids(rules, "SEG", SegmentationStorage) == ["radiomics"]
    assert dag_ids(rules, "RTSTRUCT", RTStructureSetStorage) == ["radiomics"]


def test_images_trigger_nothing() -> None:
    rules = load_rules()
    assert matching_actions(rules, series(modality="CT", sop_class_uid=CTImageStorage)) == []
    assert dag_ids(rules, "CT", EnhancedCTImageStorage) == []


def test_commented_examples_are_valid(tmp_path: Path) -> None:
    """Operators copy the examples: uncommented, they must load and mean what they say."""
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    uncommented = re.sub(r"(?m)^  # (  |- )", r"  \1", text)
    rules = load_rules(write_rules(tmp_path, uncommented))
    assert [rule.name for rule in rules.rules] == [
        "segmentations-to-radiomics",
        "chest-ct-to-research-pacs",
        "quarantine-test-patients",
    ]
    chest = series(
        modality="CT",
        calling_ae="CT_SCANNER1",
        BodyPartExamined="THORAX",
        ImageType=["ORIGINAL", "PRIMARY"],
        SeriesDescription="Lung 1.0 mm",
    )
    found = matching_actions(rules, chest)
    assert [(rule.name, action.forward) for rule, action in found] == [
        ("chest-ct-to-research-pacs", rules.rules[1].actions[0].forward),
        ("chest-ct-to-research-pacs", rules.rules[1].actions[1].forward),
    ]
