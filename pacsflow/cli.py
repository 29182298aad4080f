"""The ``pacsflow`` command: run the platform and administer its archive and users."""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
from tqdm import tqdm

from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import IngestError, Outcome, Source, SourceKind
from pacsflow.routing import RoutingError, load_rules
from pacsflow.settings import Settings, SettingsError, load_settings
from pacsflow.supervisor import Service, Supervisor, stop_on_signals
from pacsflow.workflows.airflow_env import airflow_services, dispatcher_client, migrate_airflow

logger = logging.getLogger("pacsflow")


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """pacsflow: an on-premises DICOM platform for research labs."""
    level = os.environ.get("PACSFLOW_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@main.command()
def up() -> None:
    """Set up and run the whole platform in the foreground; Ctrl-C stops it."""
    settings = _settings()
    _check_routing_rules(settings)
    _prepare(settings)
    migrate_airflow(settings)
    click.echo(
        f"pacsflow: web and DICOMweb on http://{settings.bind}:{settings.http_port}/, "
        f"Airflow on http://{settings.bind}:{settings.airflow_port}/ "
        f"(state in {settings.resolved_home})"
    )
    sys.exit(Supervisor(platform_services(settings)).run())


def _check_routing_rules(settings: Settings) -> None:
    """Load the routing rules once; a bad file stops the start, naming the problem."""
    try:
        load_rules(settings.routing)
    except RoutingError as exc:
        raise click.ClickException(str(exc)) from None


ACCEPT_ALL_CALLING_AES = "PACSFLOW_DICOM_ACCEPT_ALL_CALLING_AES"


def platform_services(settings: Settings) -> list[Service]:
    """What `up` runs. On one machine the receiver accepts any calling AE unless told not to."""
    receiver_environment = {}
    if ACCEPT_ALL_CALLING_AES not in os.environ:
        receiver_environment[ACCEPT_ALL_CALLING_AES] = "true"
        logger.warning(
            "the DICOM receiver accepts any calling AE (the single-machine default); set "
            "%s=false and register peers with `pacsflow ae add` to restrict it",
            ACCEPT_ALL_CALLING_AES,
        )
    command = [sys.executable, "-m", "pacsflow"]
    return [
        Service("web", [*command, "web"]),
        Service("receiver", [*command, "receiver"], receiver_environment),
        Service("dispatcher", [*command, "dispatcher"]),
        *airflow_services(settings),
    ]


def _prepare(settings: Settings) -> None:
    """Migrate the index and create the first admin before workers start (idempotent)."""
    archive = Archive(settings)
    archive.migrate()
    archive.close()
    from pacsflow.web.app import create_app

    create_app(settings)


@main.command()
def web() -> None:
    """Run only the web app (DICOMweb, REST, dashboard)."""
    from pacsflow.web.server import WebServer

    settings = _settings()
    _prepare(settings)
    WebServer(settings).run()


@main.command()
def dispatcher() -> None:
    """Run only the dispatcher: start `process_series` when a series has been quiet."""
    from pacsflow.archive.dispatcher import Dispatcher

    settings = _settings()
    _check_routing_rules(settings)
    archive = Archive(settings)
    archive.migrate()
    airflow = dispatcher_client(settings)
    logger.info(
        "dispatcher: a series is processed once quiet for %.0f s", settings.series_quiet_seconds
    )
    with stop_on_signals() as stopping:
        Dispatcher(archive, airflow, settings.series_quiet_seconds).run(stopping)
    archive.close()


@main.command()
def migrate() -> None:
    """Bring the archive index schema up to date."""
    archive = Archive(_settings())
    archive.migrate()
    click.echo("archive index is up to date")


def _walk(paths: tuple[Path, ...]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from (p for p in sorted(path.rglob("*")) if p.is_file())
        else:
            yield path


def _is_part10(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


@main.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--jobs", "-j", default=4, show_default=True, help="files ingested in parallel")
def import_(paths: tuple[Path, ...], jobs: int) -> None:
    """Import DICOM files and folders (recursively); non-DICOM files are skipped and counted."""
    settings = _settings()
    archive = Archive(settings)
    archive.migrate()
    files = list(_walk(paths))
    source = Source(SourceKind.IMPORT, username=os.environ.get("USER", ""))
    counts: Counter[str] = Counter()
    rejected: list[str] = []

    def one(path: Path) -> str:
        if not _is_part10(path):
            return "not DICOM"
        try:
            with open(path, "rb") as f:
                return archive.ingest_stream(f, source).outcome.value
        except IngestError as exc:
            rejected.append(f"{path}: {exc}")
            return "rejected"

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for outcome in tqdm(pool.map(one, files), total=len(files), unit="file", desc="import"):
            counts[outcome] += 1
    for line in rejected:
        click.echo(f"rejected {line}", err=True)
    summary = ", ".join(
        f"{counts[name]} {name}"
        for name in (Outcome.STORED.value, Outcome.DUPLICATE.value, Outcome.REPLACED.value)
    )
    click.echo(f"{summary}, {counts['rejected']} rejected, {counts['not DICOM']} not DICOM")
    if counts["rejected"]:
        sys.exit(1)


@main.command()
@click.option("--verify", is_flag=True, help="re-hash every file against its stored digest")
@click.option("--remove-orphans", is_flag=True, help="delete files that no index row refers to")
def fsck(verify: bool, remove_orphans: bool) -> None:
    """Check that the archive index and the stored files agree."""
    from pacsflow.archive.fsck import fsck as run_fsck

    archive = Archive(_settings())
    recovered = archive.recover()
    if recovered:
        click.echo(f"cleaned up {recovered} files of interrupted ingests")
    with tqdm(unit="instance", desc="fsck") as bar:
        report = run_fsck(archive, verify=verify, progress=bar.update)
    for label, keys in (
        ("missing file", report.missing_files),
        ("orphan file", report.orphan_files),
        ("size differs", report.size_mismatches),
        ("content differs", report.digest_mismatches),
    ):
        for key in keys:
            click.echo(f"{label}: {key}")
    if remove_orphans and report.orphan_files:
        archive.storage.remove(report.orphan_files)
        click.echo(f"removed {len(report.orphan_files)} orphan files")
        report.orphan_files = []
    click.echo(f"checked {report.checked} instances: {'OK' if report.ok else 'PROBLEMS FOUND'}")
    if not report.ok:
        sys.exit(1)


@main.command()
def reindex() -> None:
    """Rebuild the search index from the archive (every stored series)."""
    from pacsflow.search.indexing import all_series, open_backend
    from pacsflow.search.indexing import reindex as rebuild

    settings = _settings()
    archive = Archive(settings)
    archive.migrate()
    backend = open_backend(settings, archive)
    with tqdm(total=len(all_series(archive)), unit="series", desc="reindex") as bar:
        indexed = rebuild(archive, backend, progress=bar.update)
    click.echo(f"indexed {indexed} series")
    archive.close()


@main.group()
def ae() -> None:
    """Manage known DICOM peers: who may connect, and where C-MOVE sends."""


@ae.command("add")
@click.argument("ae_title")
@click.option("--host", default="", help="where C-MOVE sends to this AE")
@click.option("--port", type=int, default=None, help="its DICOM port")
@click.option("--no-connect", is_flag=True, help="a C-MOVE destination that may not connect")
@click.option("--description", default="")
@click.option("--project", "projects", multiple=True, help="a project it may query (repeat)")
@click.option("--all-projects", is_flag=True, help="it may query and retrieve every study")
def ae_add(
    ae_title: str,
    host: str,
    port: int | None,
    no_connect: bool,
    description: str,
    projects: tuple[str, ...],
    all_projects: bool,
) -> None:
    """Register a peer AE; it queries and retrieves only its projects' studies."""
    from pacsflow.archive.projects import find_project, give_peer_projects
    from pacsflow.archive.remote_aes import add_peer

    archive = Archive(_settings())
    archive.migrate()
    with archive.engine.connect() as conn:
        unknown = [name for name in projects if find_project(conn, name) is None]
    if unknown:  # checked first, so that no peer is registered without its projects
        raise click.ClickException(f"no project named {unknown[0]!r}: add it first")
    try:
        add_peer(archive, ae_title, host, port, not no_connect, description, all_projects)
        with archive.write_connection() as conn:
            give_peer_projects(conn, ae_title, projects)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"registered AE {ae_title.strip()}")


@ae.command("list")
def ae_list() -> None:
    """List registered peer AEs."""
    from pacsflow.archive.remote_aes import list_peers

    archive = Archive(_settings())
    archive.migrate()
    for peer in list_peers(archive):
        address = f"{peer.host}:{peer.port}" if peer.host else "-"
        access = "may connect" if peer.may_connect else "move destination only"
        click.echo(f"{peer.ae_title}\t{address}\t{access}\t{peer.description}")


@main.group()
def project() -> None:
    """Manage projects: groups of studies that their members may see."""


@project.command("add")
@click.argument("name")
@click.option("--ae-title", default=None, help="C-STOREs to this called AE title join it")
@click.option("--description", default="")
def project_add(name: str, ae_title: str | None, description: str) -> None:
    """Create a project."""
    from pacsflow.archive.projects import create_project

    archive = Archive(_settings())
    archive.migrate()
    try:
        with archive.write_connection() as conn:
            create_project(conn, name, description, ae_title)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created project {name}")


@project.command("list")
def project_list() -> None:
    """List projects with their AE titles and study counts."""
    from pacsflow.archive.projects import list_projects

    archive = Archive(_settings())
    archive.migrate()
    with archive.engine.connect() as conn:
        for info in list_projects(conn):
            click.echo(f"{info.name}\t{info.ae_title or '-'}\t{info.studies}\t{info.description}")


@ae.command("remove")
@click.argument("ae_title")
def ae_remove(ae_title: str) -> None:
    """Forget a peer AE."""
    from pacsflow.archive.remote_aes import remove_peer

    archive = Archive(_settings())
    archive.migrate()
    try:
        remove_peer(archive, ae_title)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"removed AE {ae_title.strip()}")


@main.group()
def users() -> None:
    """Manage web users (roles: Admin, Operator, Researcher, Viewer)."""


def _app():  # type: ignore[no-untyped-def]
    from pacsflow.web.app import create_app

    return create_app(_settings())


@users.command("create")
@click.argument("username")
@click.option("--role", default="Viewer", show_default=True)
@click.option("--email", default=None)
@click.password_option(envvar="PACSFLOW_NEW_USER_PASSWORD")
def users_create(username: str, role: str, email: str | None, password: str) -> None:
    """Create a user."""
    from pacsflow.web.users import create_user

    try:
        create_user(_app(), username, password, role, email)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"created user {username} ({role})")


@users.command("list")
def users_list() -> None:
    """List users and their roles."""
    from pacsflow.web.users import list_users

    for user in list_users(_app()):
        state = "" if user["active"] else " (inactive)"
        click.echo(f"{user['username']}\t{','.join(user['roles'])}{state}")


@users.command("delete")
@click.argument("username")
def users_delete(username: str) -> None:
    """Delete a user."""
    from pacsflow.web.users import delete_user

    try:
        delete_user(_app(), username)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"deleted user {username}")


@main.command()
def receiver() -> None:
    """Run the DICOM receiver (C-ECHO, C-STORE) in the foreground; SIGTERM/Ctrl-C stops it."""
    from pacsflow.receiver import serve

    serve(_settings())
