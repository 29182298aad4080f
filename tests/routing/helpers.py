"""Building rules files and series facts for the routing tests."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid

from pacsflow.archive.dicomjson import dicom_json, instance_path
from pacsflow.archive.ingest import SourceKind
from pacsflow.routing import RuleSet, SeriesFacts, load_rules


def write_rules(folder: Path, text: str) -> Path:
    """A rules file holding ``text`` (dedented), as an operator would write it."""
    path = folder / "rules.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rules_from(folder: Path, rules: str) -> RuleSet:
    """Load a file of ``version: 1`` and the given YAML rules list."""
    body = textwrap.indent(textwrap.dedent(rules), "  ")
    return load_rules(write_rules(folder, f"version: 1\nrules:\n{body}"))


def instance_json(sop_class_uid: str = CTImageStorage, **attributes: Any) -> dict[str, Any]:
    """An instance's DICOM JSON as pacsflow's DICOMweb serves it."""
    ds = Dataset()
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = generate_uid()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return dicom_json(ds, instance_path("1.2.3", "1.2.3.4", ds.SOPInstanceUID))


def series(
    modality: str = "CT",
    sop_class_uid: str = CTImageStorage,
    source: SourceKind = SourceKind.DIMSE,
    calling_ae: str = "CT_SCANNER1",
    called_ae: str = "PACSFLOW",
    **attributes: Any,
) -> SeriesFacts:
    """Facts about a one-instance series; keyword arguments become header attributes."""
    instance = instance_json(sop_class_uid, Modality=modality, **attributes)
    return SeriesFacts.from_dicom_json(
        [instance], source=source, calling_ae=calling_ae, called_ae=called_ae
    )
