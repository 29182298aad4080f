"""Every validation branch of a rule, checked on the message an operator reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsflow.routing import RoutingError, load_rules
from tests.routing.helpers import rules_from, write_rules

GOOD_ACTIONS = "actions: [{trigger: {dag_id: radiomics}}]"


def problem(folder: Path, rule: str) -> str:
    """The single problem reported for a file holding one rule named "r"."""
    with pytest.raises(RoutingError) as caught:
        rules_from(folder, f"- name: r\n{_indent(rule)}")
    assert len(caught.value.problems) == 1, caught.value.problems
    assert str(caught.value).startswith(f"routing rules {folder / 'rules.yaml'}: ")
    return caught.value.problems[0]


def _indent(text: str) -> str:
    return "\n".join("  " + line for line in text.strip().splitlines())


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            f"match: {{modality: ct}}\n{GOOD_ACTIONS}",
            'field match.modality: "ct" is not a Modality code: use capitals',
        ),
        (f"match: {{modality: []}}\n{GOOD_ACTIONS}", "field match.modality: must not be empty"),
        (f"match: {{modality: 3}}\n{GOOD_ACTIONS}", "field match.modality: Input should be a"),
        (
            f"match: {{sop_class: Segmentation Storge}}\n{GOOD_ACTIONS}",
            'field match.sop_class: unknown SOP class "Segmentation Storge": give its UID, name'
            ' or keyword; did you mean "Segmentation Storage"?',
        ),
        (
            f"match: {{sop_class: [CT Image Storage, Nonsense]}}\n{GOOD_ACTIONS}",
            'field match.sop_class[1]: unknown SOP class "Nonsense"',
        ),
        (
            f"match: {{sop_class: 1.2.840.10008.1.2.1}}\n{GOOD_ACTIONS}",
            'field match.sop_class: "1.2.840.10008.1.2.1" is a Transfer Syntax UID'
            " (Explicit VR Little Endian), not a SOP class",
        ),
        (
            f'match: {{calling_ae: "THIS_IS_LONGER_THAN_16"}}\n{GOOD_ACTIONS}',
            "field match.calling_ae: must be 1 to 16 printable ASCII characters without backslash",
        ),
        (
            f'match: {{called_ae: ["OK", "A\\\\B"]}}\n{GOOD_ACTIONS}',
            "field match.called_ae[1]: must be 1 to 16 printable ASCII characters",
        ),
        (
            f"match: {{source: mail}}\n{GOOD_ACTIONS}",
            "field match.source: Input should be 'stow', 'dimse', 'import', 'workflow' or 'manual'",
        ),
        (
            f"match: {{headers: {{BodyPartExamind: CHEST}}}}\n{GOOD_ACTIONS}",
            'field match.headers.BodyPartExamind: unknown DICOM keyword "BodyPartExamind"'
            ' (keywords are case-sensitive); did you mean "BodyPartExamined"?',
        ),
        (
            f"match: {{headers: {{PixelData: x}}}}\n{GOOD_ACTIONS}",
            "field match.headers.PixelData: PixelData has VR OB or OW: its values cannot be"
            " matched",
        ),
        (
            f"match: {{headers: {{ReferencedSeriesSequence: x}}}}\n{GOOD_ACTIONS}",
            "field match.headers.ReferencedSeriesSequence: ReferencedSeriesSequence has VR SQ",
        ),
        (
            f'match: {{headers: {{BodyPartExamined: {{regex: "(CHEST"}}}}}}\n{GOOD_ACTIONS}',
            "field match.headers.BodyPartExamined.regex: invalid regular expression: missing ),"
            " unterminated subpattern at position 0",
        ),
        (
            f'match: {{headers: {{ImageType: [A, {{regex: "["}}]}}}}\n{GOOD_ACTIONS}',
            "field match.headers.ImageType[1].regex: invalid regular expression",
        ),
        (
            f"match: {{headers: {{ImageType: {{wildcard: 3}}}}}}\n{GOOD_ACTIONS}",
            "field match.headers.ImageType.wildcard: Input should be a valid string",
        ),
        (
            f"match: {{headers: {{ImageType: {{wildcard: A, regex: B}}}}}}\n{GOOD_ACTIONS}",
            "field match.headers.ImageType: give exactly one of equals, wildcard, regex",
        ),
        (
            f"match: {{headers: {{ImageType: {{glob: A}}}}}}\n{GOOD_ACTIONS}",
            "field match.headers.ImageType.glob: unknown field",
        ),
        (
            f"match: {{headers: {{PatientSex: yes}}}}\n{GOOD_ACTIONS}",
            "field match.headers.PatientSex: YAML read this as true/false (from yes/no/on/off):"
            " put it in quotes",
        ),
        (
            f"match: {{headers: {{PatientSex: null}}}}\n{GOOD_ACTIONS}",
            "field match.headers.PatientSex: a header matcher is a text or number",
        ),
        (
            f"match: {{headers: {{ImageType: []}}}}\n{GOOD_ACTIONS}",
            "field match.headers.ImageType: must not be empty",
        ),
        (f"match: {{headers: {{}}}}\n{GOOD_ACTIONS}", "field match.headers: must not be empty"),
        (
            f"match: {{}}\n{GOOD_ACTIONS}",
            "field match: give at least one condition (modality, sop_class, calling_ae,"
            " called_ae, source, headers); to match every series, list every source",
        ),
        (
            f"match: {{modality: CT, Modality: MR}}\n{GOOD_ACTIONS}",
            "field match.Modality: unknown field (check its spelling and indentation)",
        ),
        ("match: {modality: CT}\nactions: []", "field actions: must not be empty"),
        ("match: {modality: CT}", "field actions: required field is missing"),
        (GOOD_ACTIONS, "field match: required field is missing"),
        (
            "match: {modality: CT}\nactions: [{trigger: radiomics}]",
            "field actions[0].trigger: expected a mapping of fields (name: value)",
        ),
        (
            "match: {modality: CT}\nactions: [{trigger: {dag_id: my dag}}]",
            'field actions[0].trigger.dag_id: "my dag" is not a DAG id',
        ),
        (
            "match: {modality: CT}\nactions: [{trigger: {conf: {a: 1}}}]",
            "field actions[0].trigger.dag_id: required field is missing",
        ),
        (
            "match: {modality: CT}\nactions: [{trigger: {dag_id: x, conf: {day: 2024-01-31}}}]",
            "field actions[0].trigger.conf: must be plain JSON data (quote dates and times)",
        ),
        (
            "match: {modality: CT}\nactions: [{trigger: {dag_id: x, conf: [1]}}]",
            "field actions[0].trigger.conf: Input should be a valid dictionary",
        ),
        (
            "match: {modality: CT}\nactions: [{}]",
            "field actions[0]: give exactly one of trigger, forward, project",
        ),
        (
            "match: {modality: CT}\nactions: [{trigger: {dag_id: x}, forward: {dicom_ae: A}}]",
            "field actions[0]: give exactly one of trigger, forward, project",
        ),
        (
            "match: {modality: CT}\nactions: [{project: Lung Study}]",
            "field actions[0].project: 'Lung Study' cannot name a project",
        ),
        (
            "match: {modality: CT}\nactions: [{run: {dag_id: x}}]",
            "field actions[0].run: unknown field",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {retries: 2}}]",
            "field actions[0].forward: give exactly one destination: dicom_ae or dicomweb",
        ),
        (
            "match: {modality: CT}\n"
            "actions: [{forward: {dicom_ae: A, dicomweb: 'https://x/dicomweb'}}]",
            "field actions[0].forward: give exactly one destination: dicom_ae or dicomweb",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicom_ae: ''}}]",
            "field actions[0].forward.dicom_ae: must be 1 to 16 printable ASCII characters",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicom_ae: '    '}}]",
            "field actions[0].forward.dicom_ae: must be 1 to 16 printable ASCII characters",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicom_ae: 'PACS*'}}]",
            "field actions[0].forward.dicom_ae: a destination is one AE title, not a pattern",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicomweb: 'ftp://host/dicomweb'}}]",
            'field actions[0].forward.dicomweb: "ftp://host/dicomweb" is not an http:// or'
            " https:// URL",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicomweb: 'https:///dicomweb'}}]",
            'field actions[0].forward.dicomweb: "https:///dicomweb" is not an http://',
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicomweb: 'https://h/dw#x'}}]",
            "field actions[0].forward.dicomweb: a DICOMweb URL has no #fragment",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicom_ae: A, retries: '3'}}]",
            "field actions[0].forward.retries: Input should be a valid integer",
        ),
        (
            "match: {modality: CT}\nactions: [{forward: {dicom_ae: A, retries: -1}}]",
            "field actions[0].forward.retries: Input should be greater than or equal to 0",
        ),
        (
            f"match: {{modality: CT}}\n{GOOD_ACTIONS}\nenabled: 'no'",
            "field enabled: Input should be a valid boolean",
        ),
        (
            f"match: {{modality: CT}}\n{GOOD_ACTIONS}\nstop: 1",
            "field stop: Input should be a valid boolean",
        ),
        (
            f"match: {{modality: CT}}\n{GOOD_ACTIONS}\nstpo: true",
            "field stpo: unknown field (check its spelling and indentation)",
        ),
    ],
)
def test_rule_errors_name_the_rule_and_field(tmp_path: Path, rule: str, expected: str) -> None:
    assert problem(tmp_path, rule).startswith(f'rule "r" (rules[0]), {expected}')


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("''", "rule rules[0], field name: must not be empty"),
        ("' r'", 'rule " r" (rules[0]), field name: must not start or end with spaces'),
        ("42", "rule rules[0], field name: Input should be a valid string"),
    ],
)
def test_rule_name_errors(tmp_path: Path, name: str, expected: str) -> None:
    with pytest.raises(RoutingError) as caught:
        rules_from(tmp_path, f"- name: {name}\n  match: {{modality: CT}}\n  {GOOD_ACTIONS}")
    assert caught.value.problems == [expected]


def test_rule_without_name_is_named_by_position(tmp_path: Path) -> None:
    with pytest.raises(RoutingError) as caught:
        rules_from(
            tmp_path,
            f"""
            - name: first
              match: {{modality: CT}}
              {GOOD_ACTIONS}
            - match: {{modality: CT}}
              {GOOD_ACTIONS}
            """,
        )
    assert caught.value.problems == ["rule rules[1], field name: required field is missing"]


def test_duplicate_rule_names(tmp_path: Path) -> None:
    with pytest.raises(RoutingError) as caught:
        rules_from(
            tmp_path,
            f"""
            - name: same
              match: {{modality: CT}}
              {GOOD_ACTIONS}
            - name: other
              match: {{modality: MR}}
              {GOOD_ACTIONS}
            - name: same
              match: {{modality: PT}}
              {GOOD_ACTIONS}
            """,
        )
    assert caught.value.problems == [
        'rule "same" (rules[2]), field name: duplicate rule name, already used by rules[0]'
    ]


def test_rule_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(RoutingError) as caught:
        rules_from(tmp_path, "- segmentations-to-radiomics")
    assert caught.value.problems == ["rule rules[0]: expected a mapping of fields (name: value)"]


def test_several_problems_one_per_line(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        """
        version: 1
        rules:
          - name: forward-ct
            match: {modality: CT, headers: {BodyPartExamined: {regex: "("}}}
            actions: [{forward: {dicom_ae: "A\\\\B"}}]
        """,
    )
    with pytest.raises(RoutingError) as caught:
        load_rules(path)
    assert str(caught.value) == (
        f"routing rules {path}:\n"
        '  rule "forward-ct" (rules[0]), field match.headers.BodyPartExamined.regex: invalid'
        " regular expression: missing ), unterminated subpattern at position 0\n"
        '  rule "forward-ct" (rules[0]), field actions[0].forward.dicom_ae: must be 1 to 16'
        " printable ASCII characters without backslash"
    )


def test_valid_rule_keeps_what_was_written(tmp_path: Path) -> None:
    rules = rules_from(
        tmp_path,
        """
        - name: chest-ct
          description: Chest CT to the research PACS.
          enabled: false
          stop: true
          match:
            modality: [CT]
            sop_class: [CTImageStorage, 1.2.826.0.1.3680043.2.1125.1.9]
            calling_ae: "CT_*"
            called_ae: PACSFLOW
            source: [dimse, stow]
            headers:
              BodyPartExamined: [CHEST, {wildcard: "THORAX*"}, {regex: "LUNGS?"}]
              SeriesNumber: 5
          actions:
            - trigger: {dag_id: radiomics, conf: {label: chest, threshold: 0.5}}
            - forward: {dicom_ae: RESEARCH, retries: 0}
            - forward: {dicomweb: "https://archive.example.org/dicomweb"}
        """,
    )
    (rule,) = rules.rules
    assert (rule.name, rule.enabled, rule.stop) == ("chest-ct", False, True)
    assert rule.match.sop_class == ("1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.2.1125.1.9")
    assert [str(kind.value) for kind in rule.match.source] == ["dimse", "stow"]
    assert [m.model_dump(exclude_none=True) for m in rule.match.headers["BodyPartExamined"]] == [
        {"equals": "CHEST"},
        {"wildcard": "THORAX*"},
        {"regex": "LUNGS?"},
    ]
    assert rule.match.headers["SeriesNumber"][0].equals == 5
    trigger, ae, web = rule.actions
    assert trigger.trigger is not None and trigger.trigger.conf == {
        "label": "chest",
        "threshold": 0.5,
    }
    assert ae.forward is not None and (ae.forward.dicom_ae, ae.forward.retries) == ("RESEARCH", 0)
    assert (
        web.forward is not None and web.forward.dicomweb == "https://archive.example.org/dicomweb"
    )
    assert web.forward.retries == 3


def test_defaults(tmp_path: Path) -> None:
    (rule,) = rules_from(
        tmp_path, f"- name: r\n  match: {{source: import}}\n  {GOOD_ACTIONS}"
    ).rules
    assert (rule.description, rule.enabled, rule.stop) == ("", True, False)
    assert rule.actions[0].trigger is not None and rule.actions[0].trigger.conf == {}


def test_empty_rules_list_routes_nothing(tmp_path: Path) -> None:
    assert rules_from(tmp_path, "[]").rules == []
