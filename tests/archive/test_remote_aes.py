from pacsflow.archive.archive import Archive
from pacsflow.archive.remote_aes import add_peer, find_peer, may_connect


def test_may_connect_follows_registration_and_setting(archive: Archive) -> None:
    assert not may_connect(archive, "UNKNOWN")
    add_peer(archive, "SCANNER")
    add_peer(archive, "DEST", "127.0.0.1", 11113, may_connect=False)
    assert may_connect(archive, "SCANNER ")  # DICOM pads AE titles with spaces
    assert not may_connect(archive, "DEST")
    assert find_peer(archive, "DEST").port == 11113  # type: ignore[union-attr]
    archive.settings.dicom_accept_all_calling_aes = True
    assert may_connect(archive, "UNKNOWN")
