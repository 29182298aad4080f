"""Parameter sets: shipped names, uploaded files, pyradiomics' schema checks, the digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from pacsflow.operators.radiomics.model import RadiomicsError
from pacsflow.operators.radiomics.parameters import (
    PARAMS_DIR,
    SHIPPED_PARAMETER_SETS,
    parameter_file,
    parameters_digest,
)

MINIMAL = """\
setting:
  binWidth: 25
featureClass:
  firstorder:
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_shipped_sets_are_the_files_in_params() -> None:
    assert sorted(SHIPPED_PARAMETER_SETS) == sorted(p.stem for p in PARAMS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED_PARAMETER_SETS)
def test_shipped_set_resolves_and_validates(name: str) -> None:
    path = parameter_file(name)
    assert path == (PARAMS_DIR / f"{name}.yaml").resolve()
    assert len(parameters_digest(path)) == 64


def test_shipped_sets_differ() -> None:
    digests = {parameters_digest(parameter_file(name)) for name in SHIPPED_PARAMETER_SETS}
    assert len(digests) == len(SHIPPED_PARAMETER_SETS)


def test_uploaded_file_is_checked_and_returned(tmp_path: Path) -> None:
    path = write(tmp_path, "mine.yml", MINIMAL)
    assert parameter_file(str(path)) == path.resolve()


def test_digest_ignores_form_but_not_settings(tmp_path: Path) -> None:
    base = parameters_digest(write(tmp_path, "a.yaml", MINIMAL))
    same = """\
# the same settings, written differently
featureClass: {firstorder: null}
setting:
  label: 2          # pacsflow always extracts label 1
  binWidth: 25.0
"""
    assert parameters_digest(write(tmp_path, "b.yaml", same)) == base
    other = MINIMAL.replace("binWidth: 25", "binWidth: 10")
    assert parameters_digest(write(tmp_path, "c.yaml", other)) != base


def test_digest_is_stable() -> None:
    path = parameter_file("default")
    assert parameters_digest(path) == parameters_digest(path)


def test_unknown_name_lists_the_shipped_sets() -> None:
    with pytest.raises(RadiomicsError, match=r"'fancy' is neither a shipped set \(default, ibsi\)"):
        parameter_file("fancy")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RadiomicsError, match="nope.yaml: no such file"):
        parameter_file(str(tmp_path / "nope.yaml"))


def test_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "params.txt", MINIMAL)
    with pytest.raises(RadiomicsError, match="params.txt: .*YAML"):
        parameter_file(str(path))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("setting:\n  binWidth: abc\n", r"'abc' is not of type 'float'.*/setting/binWidth"),
        ("setting:\n  binWidth: -5\n", r"/setting/binWidth"),
        ("settings:\n  binWidth: 5\n", r"Key 'settings' was not defined"),
        ("featureClass:\n  glcmx:\n", r"Feature Class glcmx is not recognized"),
        ("featureClass:\n  glcm: [Nonsense]\n", r"unrecognized features.*Nonsense"),
        ("imageType:\n  Sharpened: {}\n", r"Image Type Sharpened is not recognized"),
        ("setting:\n  interpolator: sitkMagic\n", r"Interpolator value \"sitkMagic\" not valid"),
        ("setting: [1, 2\n", r"expected ',' or ']'"),
        ("- just\n- a list\n", r"is not a dict"),
        ("", r"No source file/data was loaded"),
    ],
    ids=[
        "wrong-type",
        "out-of-range",
        "unknown-key",
        "unknown-class",
        "unknown-feature",
        "unknown-image-type",
        "bad-interpolator",
        "yaml-syntax",
        "not-a-mapping",
        "empty",
    ],
)
def test_invalid_file_is_refused_naming_file_and_problem(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write(tmp_path, "upload.yaml", text)
    with pytest.raises(RadiomicsError, match=f"parameter file .*upload.yaml: .*{problem}"):
        parameter_file(str(path))
