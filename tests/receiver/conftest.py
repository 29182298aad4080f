"""A receiver on a free port, in this process, sharing the test's archive."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pacsflow.archive.archive import Archive
from pacsflow.archive.remote_aes import add_peer
from pacsflow.receiver import ReceiverHandle, start_receiver
from pacsflow.settings import Settings
from tests.live_server import free_port

CALLING_AE = "TESTSCU"


@pytest.fixture
def receiver_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"dicom_port": free_port(), "dicom_dimse_timeout": 10.0})


@pytest.fixture
def receiver(receiver_settings: Settings, archive: Archive) -> Iterator[ReceiverHandle]:
    """The receiver, with ``TESTSCU`` registered as a peer that may connect and query all."""
    add_peer(archive, CALLING_AE, all_projects=True)
    handle = start_receiver(receiver_settings, archive)
    yield handle
    handle.stop()
