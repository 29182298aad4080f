"""pyradiomics parameter sets: the shipped ones, uploaded files, and a digest of what they set.

A rule or a manual run names a parameter set: a shipped name (``default``, ``ibsi``; the YAML
files in ``params/`` say what each setting does and why) or the path of an uploaded
pyradiomics parameter file. Either is checked with pyradiomics' own schema (pykwalify, with
pyradiomics' extension checks for feature classes and image types) before anything runs.

The digest identifies the settings, not the file: comments, key order and ``25`` versus
``25.0`` do not change it, so a re-run with an equivalent file is recognised as the same run
(see ``report.report_instance_uid``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pykwalify.core
from radiomics import featureextractor, getParameterValidationFiles

from pacsflow.operators.radiomics.model import RadiomicsError

PARAMS_DIR = Path(__file__).with_name("params")
SHIPPED_PARAMETER_SETS = ("default", "ibsi")
DEFAULT_PARAMETER_SET = "default"
PARAMETER_FILE_SUFFIXES = (".yaml", ".yml")

# Settings pacsflow overrides or ignores whatever a file says: it always extracts label 1 from
# a one-label mask, and never reports diagnostics. They do not take part in the digest.
_IGNORED_SETTINGS = frozenset({"label", "label_channel", "additionalInfo"})


def parameter_file(name_or_path: str) -> Path:
    """The checked parameter file for a shipped set name or the path of an uploaded file.

    Raises RadiomicsError naming the set or file and what is wrong with it.
    """
    if name_or_path in SHIPPED_PARAMETER_SETS:
        path = PARAMS_DIR / f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            if path.suffix.lower() not in PARAMETER_FILE_SUFFIXES and len(path.parts) == 1:
                raise RadiomicsError(
                    f"parameter set {name_or_path!r} is neither a shipped set "
                    f"({', '.join(SHIPPED_PARAMETER_SETS)}) nor an uploaded parameter file"
                )
            raise RadiomicsError(f"parameter file {name_or_path}: no such file")
        if path.suffix.lower() not in PARAMETER_FILE_SUFFIXES:
            raise RadiomicsError(
                f"parameter file {name_or_path}: a pyradiomics parameter file is YAML and "
                f"its name ends in {' or '.join(PARAMETER_FILE_SUFFIXES)}"
            )
    validate_parameter_file(path)
    return path.resolve()


def validate_parameter_file(path: Path) -> None:
    """Check ``path`` against pyradiomics' parameter schema; RadiomicsError if it fails."""
    schema_file, schema_extensions = getParameterValidationFiles()
    try:
        core = pykwalify.core.Core(
            source_file=str(path), schema_files=[schema_file], extensions=[schema_extensions]
        )
        core.validate(raise_exception=True)
    except Exception as exc:  # pykwalify, ruamel.yaml and pyradiomics' checks raise many types
        raise RadiomicsError(f"parameter file {path}: {_describe(exc)}") from exc


def parameters_digest(path: Path) -> str:
    """SHA-256 (hex) of the effective settings of a checked parameter file.

    "Effective" is what pyradiomics' feature extractor runs with: the file's settings over
    pyradiomics' defaults, the enabled image types and features, in a canonical JSON form.
    """
    extractor = load_extractor(path)
    effective = {
        "imageType": extractor.enabledImagetypes,
        "featureClass": {
            name: features or [] for name, features in extractor.enabledFeatures.items()
        },
        "setting": {
            key: value for key, value in extractor.settings.items() if key not in _IGNORED_SETTINGS
        },
    }
    canonical = json.dumps(_canonical(effective), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_extractor(path: Path) -> featureextractor.RadiomicsFeatureExtractor:
    """pyradiomics' feature extractor configured by ``path``; RadiomicsError if it cannot be."""
    try:
        return featureextractor.RadiomicsFeatureExtractor(str(path))
    except Exception as exc:
        raise RadiomicsError(f"parameter file {path}: {_describe(exc)}") from exc


def _canonical(value: Any) -> Any:
    """Numbers as floats (bools stay bools) so that 25 and 25.0 digest alike."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(key): _canonical(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    return str(value)


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    lines = [line.strip(" -") for line in str(message).splitlines() if line.strip(" -")]
    return "; ".join(lines)
