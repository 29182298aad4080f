"""Known DICOM peers, kept in the archive database and managed with ``pacsflow ae``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from pacsflow.archive.archive import Archive
from pacsflow.archive.models import RemoteAE
from pacsflow.settings import check_ae_title


@dataclass(frozen=True)
class Peer:
    ae_title: str
    host: str
    port: int | None
    may_connect: bool
    description: str
    all_projects: bool = False  # may query and retrieve every study, not only its projects'


def _peer(row: RemoteAE) -> Peer:
    return Peer(
        row.ae_title, row.host, row.port, row.may_connect, row.description, row.all_projects
    )


def add_peer(
    archive: Archive,
    ae_title: str,
    host: str = "",
    port: int | None = None,
    may_connect: bool = True,
    description: str = "",
    all_projects: bool = False,
) -> Peer:
    """Register a peer; raise ValueError naming what is wrong. It may query and retrieve
    only the studies of the projects it is given (``give_peer_projects``), or every study
    with ``all_projects``."""
    title = check_ae_title(ae_title)
    if (host == "") != (port is None):
        raise ValueError("give both --host and --port (where C-MOVE sends), or neither")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not between 1 and 65535")
    row = RemoteAE(
        ae_title=title,
        host=host,
        port=port,
        may_connect=may_connect,
        description=description,
        all_projects=all_projects,
    )
    try:
        with archive.sessions.begin() as session:
            session.add(row)
    except IntegrityError:
        raise ValueError(f"AE title {title!r} is already registered") from None
    return _peer(row)


def list_peers(archive: Archive) -> list[Peer]:
    with archive.sessions() as session:
        rows = session.execute(select(RemoteAE).order_by(RemoteAE.ae_title)).scalars()
        return [_peer(row) for row in rows]


def remove_peer(archive: Archive, ae_title: str) -> None:
    with archive.sessions.begin() as session:
        result = session.execute(delete(RemoteAE).where(RemoteAE.ae_title == ae_title.strip()))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise ValueError(f"no AE titled {ae_title!r} is registered")


def find_peer(archive: Archive, ae_title: str) -> Peer | None:
    """The registered peer with this title (surrounding spaces ignored), if any."""
    with archive.sessions() as session:
        row = session.execute(
            select(RemoteAE).where(RemoteAE.ae_title == ae_title.strip())
        ).scalar_one_or_none()
        return _peer(row) if row is not None else None


def may_connect(archive: Archive, ae_title: str) -> bool:
    """Whether a calling AE may open associations (unless all are accepted by setting)."""
    if archive.settings.dicom_accept_all_calling_aes:
        return True
    peer = find_peer(archive, ae_title)
    return peer is not None and peer.may_connect
