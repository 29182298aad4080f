from pathlib import Path

from pydicom.data import get_testdata_file

from pacsflow.archive.archive import Archive
from pacsflow.archive.fsck import fsck
from pacsflow.archive.ingest import Source, SourceKind


def test_fsck_finds_each_kind_of_disagreement(archive: Archive) -> None:
    for name in ("CT_small.dcm", "MR_small.dcm", "rtstruct.dcm"):
        with open(get_testdata_file(name), "rb") as f:
            archive.ingest_stream(f, Source(SourceKind.IMPORT))
    assert fsck(archive, verify=True).ok
    ct, mr, rt = sorted(archive.storage.iter_keys())
    root = archive.storage.root
    (root / ct).unlink()
    data = (root / mr).read_bytes()
    (root / mr).write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    orphan = Path(root / rt).with_name("1.2.3.dcm")
    orphan.write_bytes(b"left by a crash")
    report = fsck(archive, verify=True)
    assert report.missing_files == [ct]
    assert report.digest_mismatches == [mr]
    assert report.orphan_files == [orphan.relative_to(root).as_posix()]
    assert report.checked == 3 and not report.ok
