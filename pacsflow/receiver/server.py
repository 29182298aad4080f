"""Run the receiver: in the foreground for ``pacsflow receiver``, or in a thread for tests."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass

from pynetdicom.transport import ThreadedAssociationServer

from pacsflow.archive.archive import Archive
from pacsflow.receiver.ae import build_ae, event_handlers
from pacsflow.receiver.association_log import AssociationLog
from pacsflow.settings import Settings
from pacsflow.supervisor import stop_on_signals

logger = logging.getLogger(__name__)


@dataclass
class ReceiverHandle:
    """A running receiver; ``stop()`` shuts it down and closes what it opened."""

    server: ThreadedAssociationServer
    archive: Archive
    log: AssociationLog
    owns_archive: bool

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        """Stop listening, abort live associations, and wait for their threads."""
        self.server.shutdown()
        if self.owns_archive:
            self.archive.close()


def start_receiver(settings: Settings, archive: Archive | None = None) -> ReceiverHandle:
    """Start the C-ECHO/C-STORE SCP on ``settings.bind:settings.dicom_port`` in threads.

    Pass ``archive`` to share one (tests do); otherwise one is opened and closed by
    ``stop()``. The index must already be migrated.
    """
    owns_archive = archive is None
    archive = archive if archive is not None else Archive(settings)
    archive.recover()
    if settings.dicom_accept_all_calling_aes:
        logger.warning(
            "accepting associations from any calling AE (PACSFLOW_DICOM_ACCEPT_ALL_CALLING_AES)"
        )
    log = AssociationLog(archive.audit)
    ae = build_ae(settings)
    server = ae.start_server(
        (settings.bind, settings.dicom_port),
        block=False,
        evt_handlers=event_handlers(archive, log),  # type: ignore[arg-type]
        ae_title=settings.ae_title,
    )
    assert isinstance(server, ThreadedAssociationServer)
    logger.info(
        "DICOM receiver %s listening on %s:%d",
        settings.ae_title,
        settings.bind,
        server.server_address[1],
    )
    return ReceiverHandle(server, archive, log, owns_archive)


def serve(settings: Settings) -> None:
    """Migrate the index, then run the receiver until SIGTERM or SIGINT."""
    archive = Archive(settings)
    archive.migrate()
    # pynetdicom spools C-STORE data sets through tempfile: in this process's staging
    # area, what a crash leaves is found and deleted by recovery instead of lying in /tmp.
    tempfile.tempdir = str(archive.storage.staging_dir)
    with stop_on_signals() as stopping:
        handle = start_receiver(settings, archive)
        try:
            while not stopping.wait(1.0):
                pass
        finally:
            handle.stop()
            archive.close()
            logger.info("DICOM receiver stopped")
