"""One handler per pynetdicom event; each gets the archive and the log through ``args``."""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import events as evt
from pynetdicom.dimse_primitives import C_STORE

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import IngestError, Outcome, Source, SourceKind, stage_dataset
from pacsflow.archive.projects import find_project_by_ae
from pacsflow.archive.remote_aes import may_connect
from pacsflow.dicom.status import StoreStatus
from pacsflow.receiver.association_log import AssociationLog, Ending, StoreOutcome
from pacsflow.receiver.audit import called_ae, calling_ae, peer
from pacsflow.receiver.enum import EchoStatus, RejectReason, RejectResult, RejectSource
from pacsflow.receiver.status import failure_status
from pacsflow.receiver.syntaxes import restrict_storage_contexts
from pacsflow.receiver.transport import wait_instead_of_polling

logger = logging.getLogger(__name__)

PREAMBLE_AND_PREFIX = 128 + 4
GROUP_LENGTH_HEADER = b"\x02\x00\x00\x00UL\x04\x00"  # (0002,0000) UL, explicit VR LE

_OUTCOMES = {
    Outcome.STORED: StoreOutcome.STORED,
    Outcome.DUPLICATE: StoreOutcome.DUPLICATE,
    Outcome.REPLACED: StoreOutcome.REPLACED,
}


def handle_requested(event: evt.Event, archive: Archive) -> None:
    """Reject unknown calling AEs, and narrow storage proposals to storable syntaxes.

    The peers live in the database, so ``AE.require_calling_aet`` (a fixed list) cannot
    express the check; an A-ASSOCIATE-RJ sent from EVT_REQUESTED is pynetdicom's supported
    way to refuse before negotiation. The called AE title, when checked, must be ours or a
    project's (whose C-STOREs join that project), which pynetdicom's fixed check cannot say.
    """
    request = event.assoc.requestor.primitive
    assert request is not None  # EVT_REQUESTED fires once the A-ASSOCIATE-RQ is in
    calling_ae = str(request.calling_ae_title or "").strip()
    called = called_ae(event)
    if archive.settings.dicom_check_called_ae and called != archive.settings.ae_title:
        with archive.engine.connect() as conn:
            known = find_project_by_ae(conn, called) is not None
        if not known:
            logger.warning(
                "association from %s refused: called AE %r is neither ours nor a project's",
                peer(event),
                called,
            )
            _reject(event, RejectResult.PERMANENT, RejectReason.CALLED_AE_NOT_RECOGNIZED)
            return
    try:
        allowed = may_connect(archive, calling_ae)
    except Exception:
        logger.exception("could not look up calling AE %r; association refused", calling_ae)
        _reject(event, RejectResult.TRANSIENT, RejectReason.NO_REASON_GIVEN)
        return
    if not allowed:
        logger.warning(
            "association from %s refused: calling AE %r is not registered "
            "(add it with `pacsflow ae add`)",
            peer(event),
            calling_ae,
        )
        _reject(event, RejectResult.PERMANENT, RejectReason.CALLING_AE_NOT_RECOGNIZED)
        return
    restrict_storage_contexts(request.presentation_context_definition_list)


def _reject(event: evt.Event, result: RejectResult, reason: RejectReason) -> None:
    """Send A-ASSOCIATE-RJ and end the association, as pynetdicom's own rejections do."""
    assoc = event.assoc
    assoc.acse.send_reject(result, RejectSource.SERVICE_USER, reason)
    evt.trigger(assoc, evt.EVT_REJECTED, {})
    assoc.kill()


def handle_connection_opened(event: evt.Event) -> None:
    """Before the association starts: its loops wait for work instead of polling."""
    wait_instead_of_polling(event.assoc)


def handle_accepted(event: evt.Event, log: AssociationLog) -> None:
    log.open(id(event.assoc), calling_ae(event), peer(event))


def handle_data_received(event: evt.Event, log: AssociationLog) -> None:
    log.received(id(event.assoc), len(event.data))


def handle_released(event: evt.Event, log: AssociationLog) -> None:
    log.close(id(event.assoc), Ending.RELEASED)


def handle_aborted(event: evt.Event, log: AssociationLog) -> None:
    _discard_partial_dataset(event)
    log.close(id(event.assoc), Ending.ABORTED)


def handle_closed(event: evt.Event, log: AssociationLog) -> None:
    _discard_partial_dataset(event)
    log.close(id(event.assoc), Ending.CLOSED)


def _discard_partial_dataset(event: evt.Event) -> None:
    """Delete the spool file of a C-STORE cut off mid-transfer.

    pynetdicom deletes the spool file after the C-STORE handler returns but not when the
    association ends while a data set is still arriving; this would leave (possibly
    PHI-bearing) partial files in the temporary directory.
    """
    message = getattr(getattr(event.assoc, "dimse", None), "message", None)
    spool: Any = getattr(message, "_data_set_file", None)
    if spool is None:
        return
    try:
        spool.close()
        Path(spool.name).unlink(missing_ok=True)
    except OSError:
        logger.warning("could not remove a partial spool file in the temporary directory")


def handle_echo(event: evt.Event, log: AssociationLog) -> int:
    log.echo(id(event.assoc))
    return EchoStatus.SUCCESS


def handle_store(event: evt.Event, archive: Archive, log: AssociationLog) -> int | Dataset:
    """Stage the received data set, ingest it, and answer only once it is durable.

    pynetdicom spools the data set to a temporary Part-10 file whose File Meta it built
    from the command set; the data set part is staged with File Meta taken from the data
    set itself (the single source of truth) and the presentation context's transfer syntax.
    """
    key = id(event.assoc)
    request = event.request
    assert isinstance(request, C_STORE)
    sop_instance_uid = str(request.AffectedSOPInstanceUID or "")
    transfer_syntax_uid = str(event.context.transfer_syntax)
    try:
        spooled = event.dataset_path
        staged = stage_dataset(archive, spooled, _dataset_offset(spooled), transfer_syntax_uid)
        result = archive.ingest(
            staged,
            Source(
                SourceKind.DIMSE,
                calling_ae=calling_ae(event),
                called_ae=called_ae(event),
                peer=peer(event),
            ),
            transfer_syntax_uid=transfer_syntax_uid,
        )
    except IngestError as exc:
        log.store(key, StoreOutcome.FAILED)
        logger.warning(
            "C-STORE of SOP Instance %s refused (0x%04X): %s",
            exc.sop_instance_uid or sop_instance_uid,
            exc.status,
            exc,
        )
        return failure_status(exc.status, str(exc))
    except Exception as exc:
        log.store(key, StoreOutcome.FAILED)
        logger.exception("C-STORE of SOP Instance %s failed", sop_instance_uid)
        return failure_status(
            StoreStatus.CANNOT_UNDERSTAND, f"processing failure: {type(exc).__name__}"
        )
    log.store(key, _OUTCOMES[result.outcome], result.study_instance_uid)
    logger.debug("C-STORE of SOP Instance %s: %s", result.sop_instance_uid, result.outcome.value)
    return StoreStatus.SUCCESS


def _dataset_offset(spooled: Path) -> int:
    """Where the data set starts in pynetdicom's spool file, after the File Meta it wrote."""
    with open(spooled, "rb") as source:
        head = source.read(PREAMBLE_AND_PREFIX + len(GROUP_LENGTH_HEADER) + 4)
    if head[128:132] != b"DICM" or head[132:140] != GROUP_LENGTH_HEADER:
        raise ValueError("the spooled data set does not start with pynetdicom's File Meta")
    (group_length,) = struct.unpack("<I", head[140:144])
    return len(head) + group_length
