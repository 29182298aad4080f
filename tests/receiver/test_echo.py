"""C-ECHO from dcmtk and pynetdicom, and the association checks on calling and called AE."""

from __future__ import annotations

import subprocess

from pynetdicom import AE

from pacsflow.archive.archive import Archive
from pacsflow.archive.remote_aes import add_peer
from pacsflow.receiver import ReceiverHandle
from pacsflow.receiver.syntaxes import VERIFICATION_SOP_CLASS
from tests.receiver.conftest import CALLING_AE

ECHO_TIMEOUT = 30


def echoscu(port: int, calling: str = CALLING_AE, called: str = "PACSFLOW") -> int:
    done = subprocess.run(
        ["echoscu", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
        capture_output=True,
        timeout=ECHO_TIMEOUT,
    )
    return done.returncode


def pynetdicom_echo(port: int, calling: str = CALLING_AE, called: str = "PACSFLOW") -> int | None:
    """The C-ECHO status, or None when the association is refused."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(VERIFICATION_SOP_CLASS)
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return None
    try:
        status = assoc.send_c_echo()
        return int(status.Status)
    finally:
        assoc.release()


def test_echoscu(receiver: ReceiverHandle) -> None:
    assert echoscu(receiver.port) == 0


def test_pynetdicom_echo(receiver: ReceiverHandle) -> None:
    assert pynetdicom_echo(receiver.port) == 0x0000


def test_unregistered_calling_ae_is_rejected_until_added(
    receiver: ReceiverHandle, archive: Archive
) -> None:
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(VERIFICATION_SOP_CLASS)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="PACSFLOW")
    assert assoc.is_rejected
    rejection = assoc.acceptor.primitive
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, 3)
    assert echoscu(receiver.port, calling="STRANGER") != 0

    add_peer(archive, "STRANGER")
    assert pynetdicom_echo(receiver.port, calling="STRANGER") == 0x0000
    assert echoscu(receiver.port, calling="STRANGER") == 0


def test_peer_registered_without_permission_is_rejected(
    receiver: ReceiverHandle, archive: Archive
) -> None:
    add_peer(archive, "BARRED", may_connect=False)
    assert pynetdicom_echo(receiver.port, calling="BARRED") is None


def test_wrong_called_ae_is_rejected(receiver: ReceiverHandle) -> None:
    ae = AE(ae_title=CALLING_AE)
    ae.add_requested_context(VERIFICATION_SOP_CLASS)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="NOTPACSFLOW")
    assert assoc.is_rejected
    rejection = assoc.acceptor.primitive
    assert (rejection.result, rejection.result_source, rejection.diagnostic) == (1, 1, 7)
    assert echoscu(receiver.port, called="NOTPACSFLOW") != 0
