"""The receiver's associations wait for work instead of polling, and clean up after it."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from pydicom.uid import generate_uid
from pynetdicom import AE, _config
from pynetdicom.association import Association
from pynetdicom.transport import AssociationSocket

from pacsflow.archive.archive import Archive
from pacsflow.dicom.status import StoreStatus
from pacsflow.receiver import ReceiverHandle, transport
from pacsflow.receiver.ae import configure_pynetdicom
from tests.receiver.test_store_pynetdicom import ct_instance, scu

VERIFICATION = "1.2.840.10008.1.1"
PYNETDICOM_SWITCHES = (
    "LOG_HANDLER_LEVEL",
    "UNRESTRICTED_STORAGE_SERVICE",
    "STORE_RECV_CHUNKED_DATASET",
    "LOG_REQUEST_IDENTIFIERS",
    "LOG_RESPONSE_IDENTIFIERS",
)


@pytest.fixture
def connected() -> Iterator[tuple[Association, socket.socket]]:
    """An acceptor association on one end of a socket pair, made to wait; the other end."""
    local, peer = socket.socketpair()
    assoc = Association(AE(), "acceptor")
    assoc.set_socket(AssociationSocket(assoc, client_socket=local))
    transport.wait_instead_of_polling(assoc)
    yield assoc, peer
    local.close()
    peer.close()


def test_something_to_send_wakes_the_waiting_dul(
    connected: tuple[Association, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    assoc, _peer = connected
    sock = assoc.dul.socket
    assert sock is not None
    monkeypatch.setattr(transport, "IDLE_WAIT", 60.0)  # a missed wake-up hangs for a minute
    threading.Timer(0.05, assoc.dul.to_provider_queue.put, ["a primitive"]).start()
    started = time.monotonic()
    assert sock.ready is False  # nothing to read: the DUL goes on to send
    assert time.monotonic() - started < 30
    assert assoc.dul.to_provider_queue.get_nowait() == "a primitive"


def test_data_from_the_peer_is_ready_and_read_whole(
    connected: tuple[Association, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    assoc, peer = connected
    sock = assoc.dul.socket
    assert sock is not None
    monkeypatch.setattr(transport, "IDLE_WAIT", 60.0)
    threading.Timer(0.05, peer.sendall, [b"\x04\x00" + b"x" * 70_000]).start()
    assert sock.ready is True
    assert sock.recv(2) == b"\x04\x00"
    assert sock.recv(70_000) == b"x" * 70_000
    peer.sendall(b"end")
    peer.shutdown(socket.SHUT_WR)
    assert sock.recv(10) == b"end"  # the peer closed: what there was


def test_association_reactor_picks_up_a_message_as_it_arrives(
    connected: tuple[Association, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    assoc, _peer = connected
    monkeypatch.setattr(transport, "IDLE_WAIT", 60.0)
    threading.Timer(0.05, assoc.dimse.msg_queue.put, [(1, "a message")]).start()
    started = time.monotonic()
    assert assoc.dimse.get_msg(block=False) == (1, "a message")
    assert time.monotonic() - started < 30


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_ended_associations_close_their_wake_ups(
    receiver: ReceiverHandle, archive: Archive
) -> None:
    """Released, aborted and rejected: none may leave its socket pair open."""
    ae = scu()
    ae.add_requested_context(VERIFICATION)
    stranger = AE(ae_title="STRANGER")
    stranger.add_requested_context(VERIFICATION)
    # Warm up: imports and pools open descriptors of their own on first use.
    ae.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW").release()
    time.sleep(0.5)
    before = open_descriptors()
    for _ in range(5):
        assoc = ae.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
        ds = ct_instance(generate_uid(), generate_uid())
        assert assoc.send_c_store(ds).Status == StoreStatus.SUCCESS
        assoc.release()
        ae.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW").abort()
        assert stranger.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW").is_rejected
    deadline = time.monotonic() + 10
    while len(receiver.server.active_associations) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_descriptors() <= before + 2, "wake-up socket pairs were left open"


@pytest.mark.parametrize(("level", "expected"), [("INFO", "none"), ("DEBUG", "standard")])
def test_pynetdicom_event_logging_only_when_debugging(
    level: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for switch in PYNETDICOM_SWITCHES:  # restored afterwards
        monkeypatch.setattr(_config, switch, getattr(_config, switch))
    pynetdicom_logger = logging.getLogger("pynetdicom")
    original = pynetdicom_logger.level
    pynetdicom_logger.setLevel(level)
    try:
        configure_pynetdicom()
    finally:
        pynetdicom_logger.setLevel(original)
    handler_level = _config.LOG_HANDLER_LEVEL
    assert handler_level == expected
