"""The test corpus: every DICOM file of ../shared/data and of pydicom's test data."""

from __future__ import annotations

import warnings
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.dataset import Dataset

from pacsflow.dicom.uid import is_valid_uid
from tests.conftest import SHARED_DATA

REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class Sample:
    path: Path
    dataset: Dataset
    encoded: bytes  # what dicomweb-client sends: pydicom.dcmwrite of the dataset

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def sent(self) -> Dataset:
        """The data set as stored: dcmwrite drops group lengths the original file may have."""
        return pydicom.dcmread(BytesIO(self.encoded))


def test_data_folders() -> list[Path]:
    """pydicom's bundled test files and the pydicom-data package's, read offline."""
    import data_store  # the pydicom-data package

    return [
        Path(pydicom.data.__file__).parent / "test_files",
        Path(data_store.__file__).parent / "data",
        SHARED_DATA,
    ]


def part10_files() -> list[Path]:
    candidates = [p for folder in test_data_folders() for p in folder.rglob("*") if p.is_file()]
    files = []
    for path in candidates:
        with open(path, "rb") as f:
            head = f.read(132)
        if len(head) == 132 and head[128:] == b"DICM":
            files.append(path)
    return sorted(set(files))


def _storable(path: Path) -> Sample | None:
    """A file pydicom reads whole and that carries the four UIDs an archive needs."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            if not all(is_valid_uid(ds.get(k)) for k in REQUIRED_UIDS):
                return None
            ds.to_json_dict()  # the reference the metadata is compared with must exist
            buffer = BytesIO()
            pydicom.dcmwrite(buffer, ds)
    except Exception:
        return None
    return Sample(path, ds, buffer.getvalue())


@cache
def storable_rounds() -> list[list[Sample]]:
    """Storable samples split into rounds in which each SOP Instance UID occurs once.

    pydicom's test data reuses UIDs across encodings of the same image, which an archive
    rightly refuses as conflicting duplicates; each round is stored and then deleted.
    """
    by_uid: dict[str, list[Sample]] = defaultdict(list)
    for path in part10_files():
        sample = _storable(path)
        if sample is not None:
            by_uid[str(sample.dataset.SOPInstanceUID)].append(sample)
    depth = max(len(group) for group in by_uid.values())
    return [[group[i] for group in by_uid.values() if i < len(group)] for i in range(depth)]
