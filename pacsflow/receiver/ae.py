"""Build the pynetdicom Application Entity from settings, and its event handlers."""

from __future__ import annotations

import logging

from pynetdicom import AE, _config, evt

from pacsflow.archive.archive import Archive
from pacsflow.receiver import handlers
from pacsflow.receiver.association_log import AssociationLog
from pacsflow.receiver.find import FIND_SOP_CLASSES, handle_find
from pacsflow.receiver.retrieve import GET_SOP_CLASSES, MOVE_SOP_CLASSES, handle_get, handle_move
from pacsflow.receiver.syntaxes import UNCOMPRESSED_TRANSFER_SYNTAXES, VERIFICATION_SOP_CLASS
from pacsflow.settings import Settings

logger = logging.getLogger(__name__)

EventHandlers = list[tuple[evt.EventType, object, list[object]]]


def configure_pynetdicom() -> None:
    """pynetdicom's process-wide switches the receiver depends on.

    Unrestricted storage: accept every storage SOP class, including private ones and ones
    newer than pynetdicom (contexts are still narrowed per association, see
    :func:`pacsflow.receiver.syntaxes.restrict_storage_contexts`). Chunked receive: spool
    each data set to a file instead of holding it in memory. pynetdicom's own event logging
    only when its logger shows DEBUG: otherwise it formats PDU and DIMSE dumps that are
    dropped, and logs a line per C-STORE at INFO, where the receiver logs one per
    association (:mod:`pacsflow.receiver.association_log`).
    """
    _config.UNRESTRICTED_STORAGE_SERVICE = True
    _config.STORE_RECV_CHUNKED_DATASET = True
    debugging = logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG)
    _config.LOG_HANDLER_LEVEL = "standard" if debugging else "none"
    # pynetdicom logs query identifiers (names, IDs) at INFO otherwise: no PHI in logs.
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False


def build_ae(settings: Settings) -> AE:
    """The AE with the settings' title, limits and timeouts; C-ECHO, C-FIND, C-MOVE, C-GET,
    all storage.

    C-GET needs no storage contexts here: unrestricted storage accepts the ones a C-GET SCU
    proposes, with the SCP/SCU roles it asks for, and C-MOVE proposes its own to the
    destination (:func:`pacsflow.receiver.retrieve.destination_contexts`).
    """
    configure_pynetdicom()
    ae = AE(ae_title=settings.ae_title)
    ae.add_supported_context(VERIFICATION_SOP_CLASS, list(UNCOMPRESSED_TRANSFER_SYNTAXES))
    for sop_class in (*FIND_SOP_CLASSES, *MOVE_SOP_CLASSES, *GET_SOP_CLASSES):
        ae.add_supported_context(sop_class, list(UNCOMPRESSED_TRANSFER_SYNTAXES))
    ae.require_called_aet = False  # handlers.handle_requested checks it (projects' AEs too)
    ae.maximum_associations = settings.dicom_max_associations
    ae.maximum_pdu_size = settings.dicom_max_pdu  # 0: unlimited, as in pynetdicom
    ae.acse_timeout = settings.dicom_acse_timeout
    ae.dimse_timeout = settings.dicom_dimse_timeout
    ae.network_timeout = settings.dicom_network_timeout
    return ae


def event_handlers(archive: Archive, log: AssociationLog) -> EventHandlers:
    return [
        (evt.EVT_CONN_OPEN, handlers.handle_connection_opened, []),
        (evt.EVT_REQUESTED, handlers.handle_requested, [archive]),
        (evt.EVT_ACCEPTED, handlers.handle_accepted, [log]),
        (evt.EVT_DATA_RECV, handlers.handle_data_received, [log]),
        (evt.EVT_RELEASED, handlers.handle_released, [log]),
        (evt.EVT_ABORTED, handlers.handle_aborted, [log]),
        (evt.EVT_CONN_CLOSE, handlers.handle_closed, [log]),
        (evt.EVT_C_ECHO, handlers.handle_echo, [log]),
        (evt.EVT_C_STORE, handlers.handle_store, [archive, log]),
        (evt.EVT_C_FIND, handle_find, [archive]),
        (evt.EVT_C_MOVE, handle_move, [archive]),
        (evt.EVT_C_GET, handle_get, [archive]),
    ]
