"""Problems with a rules file as a whole: reading, YAML syntax, the top level."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsflow.routing import RoutingError, load_rules
from tests.routing.helpers import write_rules


def error_for(path: Path) -> str:
    with pytest.raises(RoutingError) as caught:
        load_rules(path)
    assert caught.value.path == path
    return str(caught.value)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        """
        version: 1
        rules:
          - name: a
           match: {modality: CT}
        """,
    )
    assert error_for(path) == (
        f"routing rules {path}: line 5, column 4: invalid YAML:"
        " expected <block end>, but found '<block mapping start>'"
    )


def test_unclosed_bracket(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "version: 1\nrules: [\n")
    assert error_for(path).startswith(f"routing rules {path}: line 3, column 1: invalid YAML:")


def test_key_given_twice_is_an_error(tmp_path: Path) -> None:
    path = write_rules(
        tmp_path,
        """
        version: 1
        rules:
          - name: a
            match: {modality: CT}
            match: {modality: MR}
            actions: [{trigger: {dag_id: x}}]
        """,
    )
    assert error_for(path) == (
        f"routing rules {path}: line 6, column 5: invalid YAML: key 'match' is given twice"
    )


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    path = write_rules(tmp_path, text)
    assert error_for(path) == (
        f"routing rules {path}: the file is empty; it needs version: 1 and a rules list"
    )


@pytest.mark.parametrize("text", ["- name: a\n", "just text\n", "42\n"])
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = write_rules(tmp_path, text)
    assert error_for(path) == (
        f"routing rules {path}: expected a mapping with version: 1 and a rules list"
    )


def test_unknown_top_level_keys(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "version: 1\nrules: []\nrule: []\ndefaults: {}\n")
    assert error_for(path) == (
        f"routing rules {path}:\n"
        "  field rule: unknown field (check its spelling and indentation)\n"
        "  field defaults: unknown field (check its spelling and indentation)"
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rules: []\n", "field version: required field is missing"),
        ("version: 2\nrules: []\n", "field version: Input should be 1"),
        ("version: '1'\nrules: []\n", "field version: Input should be 1"),
        ("version: 1\n", "field rules: required field is missing"),
        ("version: 1\nrules:\n", "field rules: Input should be a valid list"),
        ("version: 1\nrules: {a: 1}\n", "field rules: Input should be a valid list"),
    ],
)
def test_top_level_fields(tmp_path: Path, text: str, problem: str) -> None:
    path = write_rules(tmp_path, text)
    assert error_for(path) == f"routing rules {path}: {problem}"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert error_for(path) == (
        f"routing rules {path}: cannot read the file: No such file or directory"
    )


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"version: 1\nrules: []\n# \xff\xfe\n")
    assert error_for(path).startswith(f"routing rules {path}: cannot read the file: 'utf-8' codec")


def test_routing_error_is_a_value_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="routing rules"):
        load_rules(tmp_path / "nowhere.yaml")


def test_yaml_tags_beyond_safe_load_are_refused(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "version: !!python/object/apply:os.getcwd []\nrules: []\n")
    assert "invalid YAML: could not determine a constructor" in error_for(path)
