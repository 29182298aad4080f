"""The DICOM receiver: a pynetdicom C-ECHO and C-STORE SCP feeding ``Archive.ingest``."""

from __future__ import annotations

import logging

from pacsflow.receiver.server import ReceiverHandle, serve, start_receiver

__all__ = ["ReceiverHandle", "serve", "start_receiver"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
