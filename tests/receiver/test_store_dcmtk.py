"""dcmtk's storescu sends every storable corpus file; each is indexed and kept as sent."""

from __future__ import annotations

import re
import subprocess
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from pacsflow.archive.archive import Archive
from pacsflow.receiver import ReceiverHandle
from tests.dicomweb.corpus import Sample, storable_rounds
from tests.live_server import LiveServer
from tests.multipart import split_multipart
from tests.receiver.conftest import CALLING_AE
from tests.receiver.helpers import dataset_bytes, running_storescp, staging_leftovers, stored

# storescu proposes a compressed syntax only when told to; one flag per syntax, so that
# each file goes out in its own transfer syntax and storescu never transcodes.
STORESCU_PROPOSAL = {
    ExplicitVRLittleEndian: "-xe",
    ImplicitVRLittleEndian: "-xi",
    ExplicitVRBigEndian: "-xb",
    DeflatedExplicitVRLittleEndian: "-xd",
    JPEGBaseline8Bit: "-xy",
    JPEGExtended12Bit: "-xx",
    JPEGLosslessSV1: "-xs",
    JPEG2000Lossless: "-xv",
    JPEG2000: "-xw",
    JPEGLSLossless: "-xt",
    JPEGLSNearLossless: "-xu",
    RLELossless: "-xr",
}
DATASET_TRAILING_PADDING = 0xFFFCFFFC  # storescu drops it, as PS3.10 allows
STORESCU_TIMEOUT = 120
RETRIEVE_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
UNREADABLE = re.compile(
    r"^[WF]: missing SOP class \(or instance\) in file: (.*?)(?:, ignoring file)?$", re.MULTILINE
)
MAX_UNREADABLE = 10  # corpus files dcmtk itself cannot read (truncated, malformed)


def _comparable(ds: Dataset) -> dict[int, object]:
    """Values by tag; VRs differ where storescu corrects encapsulated Pixel Data OW to OB."""
    return {
        int(elem.tag): elem.value
        for elem in ds
        if elem.tag.element != 0 and elem.tag != DATASET_TRAILING_PADDING
    }


def _read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(BytesIO(data))


def storescu(port: int, proposal: str, files: list[str]) -> subprocess.CompletedProcess[str]:
    command = ["storescu", "-aet", CALLING_AE, "-aec", "PACSFLOW", "-R", "-nh", proposal]
    return subprocess.run(
        [*command, "127.0.0.1", str(port), *files],
        capture_output=True,
        text=True,
        timeout=STORESCU_TIMEOUT,
    )


def _by_syntax(samples: list[Sample]) -> dict[str, list[Sample]]:
    groups: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        groups[str(sample.dataset.file_meta.TransferSyntaxUID)].append(sample)
    return groups


def wado_instance(server: LiveServer, ds: Dataset) -> bytes:
    """The instance as WADO-RS returns it, in the transfer syntax it was stored in."""
    url = (
        f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    response = server.session().get(url, headers={"Accept": RETRIEVE_AS_STORED}, timeout=30)
    assert response.status_code == 200, response.text[:300]
    ((_, payload),) = split_multipart(response.headers["Content-Type"], response.content)
    return payload


@dataclass(frozen=True)
class ReferenceScp:
    port: int
    output: Path


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[ReferenceScp]:
    """dcmtk's storescp writing what it receives bit for bit: a record of what storescu sent.

    storescu does not always send a file's data set as the file holds it (it drops trailing
    padding and group lengths and may re-encode lengths), so the bytes sent are taken from
    an independent receiver rather than from the files.
    """
    output = tmp_path / "as-sent"
    with running_storescp(output, "PACSFLOW", "+B", "-pm", "+xa") as port:
        yield ReferenceScp(port, output)


def test_storescu_stores_every_corpus_file(
    receiver: ReceiverHandle, archive: Archive, live_server: LiveServer, reference: ReferenceScp
) -> None:
    """Every file storescu sends is kept and returned by WADO-RS exactly as it was sent."""
    problems: list[str] = []
    unreadable: set[str] = set()
    sent = 0
    for samples in storable_rounds():
        for syntax, group in _by_syntax(samples).items():
            proposal = STORESCU_PROPOSAL.get(syntax)
            if proposal is None:
                pytest.fail(f"no storescu option proposes {syntax}; add it to the table")
            files = [str(s.path) for s in group]
            done = storescu(receiver.port, proposal, files)
            storescu(reference.port, proposal, files)
            skipped = set(UNREADABLE.findall(done.stderr))
            unreadable |= skipped
            if done.returncode != 0 and not skipped:
                problems.append(f"storescu {proposal} exited {done.returncode}: {done.stderr}")
            sent += len(group) - len(skipped)
        index = stored(archive)
        for sample in samples:
            if str(sample.path) in unreadable:
                continue
            uid = str(sample.dataset.SOPInstanceUID)
            if uid not in index:
                problems.append(f"{sample.path}: not indexed")
                continue
            returned = wado_instance(live_server, sample.dataset)
            (as_sent,) = reference.output.glob(f"*.{uid}")
            if dataset_bytes(returned) != dataset_bytes(as_sent.read_bytes()):
                problems.append(f"{sample.path}: WADO-RS returns other bytes than were sent")
                continue
            kept, original = _read(returned), _read(sample.path.read_bytes())
            if kept.file_meta.TransferSyntaxUID != original.file_meta.TransferSyntaxUID:
                problems.append(f"{sample.path}: stored in another transfer syntax")
            if _comparable(kept) != _comparable(original):
                problems.append(f"{sample.path}: stored data set differs from the sent one")
        for study in {str(s.dataset.StudyInstanceUID) for s in samples}:
            archive.delete(study)
        for as_sent in reference.output.iterdir():
            as_sent.unlink()
    assert not problems, "\n".join(problems)
    assert len(unreadable) <= MAX_UNREADABLE, sorted(unreadable)
    assert sent > 250
    assert stored(archive) == {}
    assert staging_leftovers(archive) == []
