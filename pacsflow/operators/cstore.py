"""C-STORE SCU that sends Part-10 files byte for byte (PS3.4 B, PS3.7 9.1.1, PS3.8 9.3.2).

Each file's data set goes out as its raw bytes, never decoded and encoded again: pynetdicom
reads it from the file after the File Meta when ``STORE_SEND_CHUNKED_DATASET`` is set. That
needs a presentation context with exactly the stored transfer syntax, so one context is
proposed per (SOP Class, transfer syntax) pair, at most 128 per association; a series with
more pairs is sent over several associations. A destination that accepts a pair only in
another transfer syntax does not get those instances: pacsflow does not transcode.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import A_ASSOCIATE
from pynetdicom.presentation import build_context

from pacsflow.operators.report import Outcome, SendFailure

logger = logging.getLogger(__name__)

MAX_PRESENTATION_CONTEXTS = 128  # PS3.8 9.3.2.2: odd context IDs 1 to 255
MAX_AE_TITLE = 16


def check_ae_title(value: str, attribute: str) -> str:
    """``value`` if it is a valid AE title (PS3.5 6.2: 1-16 characters, no backslash or
    control characters, not only spaces), else raise ValueError naming ``attribute``."""
    if (
        not value.strip()
        or len(value) > MAX_AE_TITLE
        or "\\" in value
        or any(ord(c) < 0x20 or ord(c) > 0x7E for c in value)
    ):
        raise ValueError(
            f"{attribute} {value!r} is not a valid AE title: 1 to {MAX_AE_TITLE} printable "
            "ASCII characters, no backslash"
        )
    return value


@dataclass(frozen=True)
class Destination:
    """A DICOM node that accepts C-STORE."""

    ae_title: str
    host: str
    port: int

    def __post_init__(self) -> None:
        check_ae_title(self.ae_title, "Destination.ae_title")
        if not self.host.strip():
            raise ValueError("Destination.host is empty; give a host name or IP address")
        if not 0 < self.port < 65536:
            raise ValueError(f"Destination.port {self.port} is not between 1 and 65535")

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


@dataclass(frozen=True)
class StoredFile:
    """A Part-10 file and what its File Meta says about it."""

    path: Path
    sop_class_uid: UID
    sop_instance_uid: str  # as the archive indexes it
    transfer_syntax_uid: UID

    @classmethod
    def read(cls, sop_instance_uid: str, path: Path) -> StoredFile:
        """The file of ``sop_instance_uid``; raises if its File Meta cannot be read."""
        meta = read_file_meta_info(path)
        sop_class, syntax = meta.MediaStorageSOPClassUID, meta.TransferSyntaxUID
        return cls(path, UID(sop_class), sop_instance_uid, UID(syntax))

    @property
    def context_key(self) -> tuple[UID, UID]:
        return self.sop_class_uid, self.transfer_syntax_uid


def association_batches(files: Sequence[StoredFile]) -> list[list[StoredFile]]:
    """The files split so that each batch needs at most 128 presentation contexts."""
    batches: list[list[StoredFile]] = []
    keys: list[set[tuple[UID, UID]]] = []
    for file in files:
        for batch, batch_keys in zip(batches, keys, strict=True):
            if file.context_key in batch_keys or len(batch_keys) < MAX_PRESENTATION_CONTEXTS:
                batch.append(file)
                batch_keys.add(file.context_key)
                break
        else:
            batches.append([file])
            keys.append({file.context_key})
    return batches


def store_files(
    files: Sequence[StoredFile], destination: Destination, calling_ae: str, timeout: float
) -> dict[str, Outcome]:
    """Send every file; SOP Instance UID → status or failure. Never raises for the peer."""
    _config.STORE_SEND_CHUNKED_DATASET = True  # affects sends from a path only
    outcomes: dict[str, Outcome] = {}
    batches = association_batches(files)
    for number, batch in enumerate(batches, start=1):
        logger.info(
            "Association %d of %d with %s for %d instances",
            number,
            len(batches),
            destination,
            len(batch),
        )
        outcomes.update(_store_batch(batch, destination, calling_ae, timeout))
    return outcomes


def _store_batch(
    files: list[StoredFile], destination: Destination, calling_ae: str, timeout: float
) -> dict[str, Outcome]:
    assoc = _associate(files, destination, calling_ae, timeout)
    if not assoc.is_established:
        failure = _no_association(destination, assoc)
        return {file.sop_instance_uid: failure for file in files}
    try:
        accepted = {
            (str(cx.abstract_syntax), str(cx.transfer_syntax[0])) for cx in assoc.accepted_contexts
        }
        return {f.sop_instance_uid: _send(assoc, f, accepted, destination) for f in files}
    finally:
        if assoc.is_established:
            assoc.release()


def _associate(
    files: list[StoredFile], destination: Destination, calling_ae: str, timeout: float
) -> Association:
    ae = AE(ae_title=calling_ae)
    ae.connection_timeout = timeout
    ae.acse_timeout = timeout
    ae.dimse_timeout = timeout
    ae.network_timeout = timeout
    keys = dict.fromkeys(file.context_key for file in files)  # in order, once each
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in keys]
    return ae.associate(
        destination.host, destination.port, contexts=contexts, ae_title=destination.ae_title
    )


def _no_association(destination: Destination, assoc: Association) -> SendFailure:
    """Why there is no association, as precisely as the peer said.

    Rejections are tried again even when the peer calls them permanent: PACS reject while
    they restart or when a license is busy, and a wrong AE title costs only the retries.
    """
    answer = assoc.acceptor.primitive
    if assoc.is_rejected and isinstance(answer, A_ASSOCIATE):
        return SendFailure(
            f"association rejected by {destination} ({answer.result_str}, "
            f"{answer.source_str}): {answer.reason_str}",
            transient=True,
        )
    if assoc.rejected_contexts and not assoc.accepted_contexts:
        return SendFailure(
            f"{destination} accepts none of the proposed SOP Class and transfer syntax pairs "
            "(pacsflow sends objects as stored)",
            transient=False,
        )
    return SendFailure(
        f"no association with {destination} (connection refused, aborted or timed out)",
        transient=True,
    )


def _send(
    assoc: Association, file: StoredFile, accepted: set[tuple[str, str]], destination: Destination
) -> Outcome:
    if file.context_key not in accepted:
        return SendFailure(
            f"{destination} does not accept SOP Class {file.sop_class_uid} in transfer "
            f"syntax {file.transfer_syntax_uid} (pacsflow sends objects as stored)",
            transient=False,
        )
    try:
        status = assoc.send_c_store(file.path)
    except RuntimeError:  # pynetdicom's answer once the association has ended
        return SendFailure(f"association with {destination} ended early", transient=True)
    if "Status" not in status:
        return SendFailure(f"no C-STORE response from {destination} (timeout or abort)", True)
    return int(status.Status)


__all__ = [
    "MAX_PRESENTATION_CONTEXTS",
    "Destination",
    "StoredFile",
    "association_batches",
    "check_ae_title",
    "store_files",
]
