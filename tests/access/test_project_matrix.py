"""Projects keep their data apart in every interface.

Project ``a`` and project ``b`` each hold studies of one shared patient; ``b`` also holds a
patient of its own. Users of ``a`` in each role (and a user in no project) call every HTTP
route of the app, enumerated from its URL map and aimed at ``b``'s study, series and
instance, with every method the route takes: nothing of ``b`` comes back that the request
did not itself send (its UIDs, its description, its own patient), no count includes it,
and afterwards ``b`` is as it was.
DICOM peers mapped to ``a`` query (C-FIND, every level, patient counts) and retrieve
(C-GET, C-MOVE) the same way. Writes and deletes in ``a`` follow each role.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom import Dataset, dcmwrite
from pydicom.uid import generate_uid
from pynetdicom import AE, build_role
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)
from sqlalchemy import func, select
from werkzeug.routing import Rule

from pacsflow.archive.access import ProjectRole
from pacsflow.archive.archive import Archive
from pacsflow.archive.ingest import Source, SourceKind
from pacsflow.archive.models import Instance, ProjectMember, Series, Study, StudyProject
from pacsflow.archive.projects import create_project, give_peer_projects
from pacsflow.archive.remote_aes import add_peer
from pacsflow.receiver import ReceiverHandle, start_receiver
from pacsflow.web.dicomweb.common import ARCHIVE_EXTENSION
from pacsflow.web.users import create_user
from pacsflow.workflows.airflow_env import SERVICE_USER, service_password
from tests.conftest import ADMIN_PASSWORD, migrated_archive, opened_app
from tests.live_server import free_port
from tests.multipart import multipart_body
from tests.receiver.test_store_pynetdicom import ct_instance

SHARED_PATIENT = "SHARED-PATIENT"
B_ONLY_PATIENT = "BRAVO-ONLY-PATIENT"
B_DESCRIPTION = "bravo-confidential"
ROLES = [role.value for role in ProjectRole]
PASSWORD = "project-pw-1"
AE_OF_A = "PEER_A"
BOUNDARY = "matrix-boundary"
STOW_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@dataclass
class StudyData:
    study: str
    series: str
    instances: list[Dataset]


@dataclass
class World:
    app: Flask
    archive: Archive
    a: StudyData
    b: StudyData
    b_only: StudyData  # b's study of a patient nobody in a has

    @property
    def b_markers(self) -> list[str]:
        """Strings that only b's data holds."""
        uids = [
            uid
            for data in (self.b, self.b_only)
            for uid in (data.study, data.series, *(ds.SOPInstanceUID for ds in data.instances))
        ]
        return [*uids, B_DESCRIPTION, B_ONLY_PATIENT]


def study_of(patient: str, description: str, instances: int = 2) -> StudyData:
    study, series = generate_uid(), generate_uid()
    datasets = []
    for number in range(instances):
        ds = ct_instance(study, series, rows=4)
        ds.PatientID = patient
        ds.PatientName = patient.replace("-", "^")
        ds.StudyDescription = description
        ds.InstanceNumber = number + 1
        datasets.append(ds)
    return StudyData(study, series, datasets)


def part10(ds: Dataset) -> bytes:
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def basic(username: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


ADMIN = basic("admin", ADMIN_PASSWORD)


def store(archive: Archive, data: StudyData, project: str) -> None:
    for ds in data.instances:
        archive.ingest_stream(io.BytesIO(part10(ds)), Source(SourceKind.IMPORT, project=project))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("projects")
    with migrated_archive("sqlite", home) as archive:
        with archive.write_connection() as conn:
            create_project(conn, "a", "Alpha", "PROJ_A")
            create_project(conn, "b", "Bravo", "PROJ_B")
        a = study_of(SHARED_PATIENT, "alpha-study")
        b = study_of(SHARED_PATIENT, B_DESCRIPTION)
        b_only = study_of(B_ONLY_PATIENT, B_DESCRIPTION, instances=1)
        store(archive, a, "a")
        store(archive, b, "b")
        store(archive, b_only, "b")
        with opened_app(archive.settings) as app:
            client = app.test_client()
            for project in ("a", "b"):
                for role in ROLES:
                    name = f"{project}-{role.lower()}"
                    create_user(app, name, PASSWORD, "Researcher")
                    answer = client.put(
                        f"/api/v1/projects/{project}/members/{name}",
                        json={"role": role},
                        headers=ADMIN,
                    )
                    assert answer.status_code == 200, answer.json
            create_user(app, "outsider", PASSWORD, "Researcher")
            assert client.post("/api/v1/search/reindex", headers=ADMIN).json == {"indexed": 3}
            yield World(app, archive, a, b, b_only)


USERS_OF_A = [f"a-{role.lower()}" for role in ROLES] + ["outsider"]


# -- every HTTP route -----------------------------------------------------------------------


def route_arguments(world: World) -> dict[str, str]:
    """A value for each URL argument of the app's routes, aimed at project b."""
    b = world.b
    return {
        "study": b.study,
        "series": b.series,
        "series_uid": b.series,
        "instance": b.instances[0].SOPInstanceUID,
        "frame_list": "1",
        "tag_path": "7FE00010",
        "project": "b",
        "name": "b",
        "username": "b-viewer",
        "dag_id": "process_series",
        "run_id": f"process_series__{b.series}__0",
        "ae_title": AE_OF_A,
        "token_id": "1",
        "pk": "1",
        "filename": "x",
        "path": "index.html",
        "group_by": "x",
        "locale": "en",
        "version": "v1",
    }


def request_body(rule: Rule, world: World) -> dict[str, Any]:
    """What a write to ``rule`` sends: b's objects to STOW, b's series to workflows."""
    if rule.endpoint.startswith(("dicomweb.store", "dicomweb_project.store")):
        body = multipart_body(*(part10(ds) for ds in world.b.instances), boundary=BOUNDARY)
        return {"data": body, "content_type": STOW_TYPE}
    return {
        "json": {
            "series": [world.b.series],
            "name": "b",
            "role": "Manager",
            "query": {"kind": "term", "field": "Project", "value": "b"},
        }
    }


def url_for_rule(rule: Rule, arguments: dict[str, str]) -> str:
    missing = [a for a in rule.arguments if a not in arguments and a not in (rule.defaults or {})]
    assert not missing, f"{rule.rule}: give the matrix a value for {missing}"
    url = rule.rule
    for argument in rule.arguments:
        if argument in arguments:
            url = _replace_argument(url, argument, arguments[argument])
    return url


def _replace_argument(url: str, argument: str, value: str) -> str:
    start = url.find("<")
    while start != -1:
        end = url.index(">", start)
        if url[start + 1 : end].split(":")[-1] == argument:
            return url[:start] + value + url[end + 1 :]
        start = url.find("<", end)
    return url


def b_snapshot(archive: Archive) -> dict[str, Any]:
    """What b holds: its studies' instances and memberships, its members."""
    with archive.engine.connect() as conn:
        instances = conn.execute(
            select(func.count())
            .select_from(Instance)
            .join(Series, Instance.series_fk == Series.id)
            .join(StudyProject, StudyProject.study_fk == Series.study_fk)
            .where(StudyProject.project_fk == 2)
        ).scalar()
        memberships = conn.execute(select(StudyProject.study_fk, StudyProject.project_fk)).all()
        members = conn.execute(select(ProjectMember.user_id, ProjectMember.role)).all()
    return {"instances": instances, "memberships": sorted(memberships), "members": sorted(members)}


@pytest.mark.parametrize("username", USERS_OF_A)
def test_no_route_gives_a_user_of_a_anything_of_b(world: World, username: str) -> None:
    client: FlaskClient = world.app.test_client()
    before = b_snapshot(world.archive)
    arguments = route_arguments(world)
    checked = 0
    for rule in world.app.url_map.iter_rules():
        url = url_for_rule(rule, arguments)
        for method in sorted((rule.methods or set()) - {"OPTIONS"}):
            body = request_body(rule, world) if method in {"POST", "PUT", "PATCH"} else {}
            response = client.open(url, method=method, headers=basic(username), **body)
            text = response.get_data(as_text=False)
            sent = url.encode() + body.get("data", b"") + json.dumps(body.get("json")).encode()
            leaked = [m for m in world.b_markers if m.encode() in text and m.encode() not in sent]
            assert not leaked, f"{method} {url} gave {username} {leaked} ({response.status_code})"
            assert response.status_code != 500, f"{method} {url}: {response.get_data(as_text=True)}"
            checked += 1
    assert checked > 300  # every route of DICOMweb, its project roots, REST and pages
    assert b_snapshot(world.archive) == before


# -- lists and counts ---------------------------------------------------------------------------


@pytest.mark.parametrize("username", USERS_OF_A)
def test_lists_and_counts_hold_only_a(world: World, username: str) -> None:
    client = world.app.test_client()
    visible_a = username != "outsider"
    expected_studies = {world.a.study} if visible_a else set()
    studies = client.get("/dicomweb/studies", headers=basic(username)).json or []
    assert {s["0020000D"]["Value"][0] for s in studies} == expected_studies
    assert len(client.get("/dicomweb/instances", headers=basic(username)).json or []) == (
        len(world.a.instances) if visible_a else 0
    )
    found = client.get("/api/v1/search", headers=basic(username)).json
    assert found["total"] == (1 if visible_a else 0)
    assert {h["SeriesInstanceUID"] for h in found["hits"]} == (
        {world.a.series} if visible_a else set()
    )
    for name, buckets in found["facets"].items():
        assert sum(b["count"] for b in buckets) <= found["total"] * 2, name
    modalities = client.get("/api/v1/overview", headers=basic(username)).json
    assert modalities["studies_per_modality"] == ([{"key": "CT", "count": 1}] if visible_a else [])
    projects = client.get("/api/v1/projects", headers=basic(username)).json["projects"]
    assert [p["name"] for p in projects] == (["a"] if visible_a else [])


def test_admins_see_both_projects(world: World) -> None:
    client = world.app.test_client()
    studies = client.get("/dicomweb/studies", headers=ADMIN).json
    assert {s["0020000D"]["Value"][0] for s in studies} == {
        world.a.study,
        world.b.study,
        world.b_only.study,
    }
    assert client.get("/api/v1/search", headers=ADMIN).json["total"] == 3
    b_root = client.get("/dicomweb/projects/b/studies", headers=ADMIN).json
    assert {s["0020000D"]["Value"][0] for s in b_root} == {world.b.study, world.b_only.study}
    retrieve_url = b_root[0]["00081190"]["Value"][0]
    assert "/dicomweb/projects/b/studies/" in retrieve_url


def test_a_project_root_shows_that_project_only(world: World) -> None:
    client = world.app.test_client()
    headers = basic("a-viewer")
    a_root = client.get("/dicomweb/projects/a/studies", headers=headers).json
    assert [s["0020000D"]["Value"][0] for s in a_root] == [world.a.study]
    assert client.get("/dicomweb/projects/b/studies", headers=headers).status_code == 404
    assert client.get("/dicomweb/projects/nope/studies", headers=headers).status_code == 404
    assert client.get("/dicomweb/projects/a/studies").status_code == 401


# -- writes and deletes follow the role ------------------------------------------------------


@pytest.fixture
def fresh_world(tmp_path: Path) -> Iterator[World]:
    """A world of its own for tests that change it."""
    with migrated_archive("sqlite", tmp_path) as archive:
        with archive.write_connection() as conn:
            create_project(conn, "a", "Alpha", "PROJ_A")
            create_project(conn, "b", "Bravo", "PROJ_B")
        a, b = study_of(SHARED_PATIENT, "alpha-study"), study_of(SHARED_PATIENT, B_DESCRIPTION)
        store(archive, a, "a")
        store(archive, b, "b")
        with opened_app(archive.settings) as app:
            client = app.test_client()
            for role in ROLES:
                name = f"a-{role.lower()}"
                create_user(app, name, PASSWORD, "Researcher")
                client.put(f"/api/v1/projects/a/members/{name}", json={"role": role}, headers=ADMIN)
            create_user(app, "a-global-viewer", PASSWORD, "Viewer")
            client.put(
                "/api/v1/projects/a/members/a-global-viewer",
                json={"role": "Manager"},
                headers=ADMIN,
            )
            yield World(app, archive, a, b, study_of(B_ONLY_PATIENT, B_DESCRIPTION))


def stow(
    client: FlaskClient, url: str, username: str, datasets: list[Dataset], password: str = PASSWORD
) -> Any:
    body = multipart_body(*(part10(ds) for ds in datasets), boundary=BOUNDARY)
    headers = basic(username, password)
    return client.post(url, data=body, content_type=STOW_TYPE, headers=headers)


@pytest.mark.parametrize(
    ("username", "may_write", "may_delete"),
    [
        ("a-viewer", False, False),
        ("a-researcher", True, False),
        ("a-manager", True, True),
        ("a-global-viewer", False, False),  # a global Viewer stays read-only in any project
    ],
)
def test_writes_and_deletes_follow_the_role(
    fresh_world: World, username: str, may_write: bool, may_delete: bool
) -> None:
    client = fresh_world.app.test_client()
    new = study_of(SHARED_PATIENT, "new-in-a", instances=1)
    stored = stow(client, "/dicomweb/projects/a/studies", username, new.instances)
    assert stored.status_code == (200 if may_write else 403), stored.json
    added = study_of(SHARED_PATIENT, "more", instances=1).instances[0]
    added.StudyInstanceUID, added.SeriesInstanceUID = fresh_world.a.study, fresh_world.a.series
    into_existing = stow(client, "/dicomweb/studies", username, [added])
    assert into_existing.status_code == (200 if may_write else 403)

    deleted = client.delete(f"/dicomweb/studies/{fresh_world.a.study}", headers=basic(username))
    assert deleted.status_code == (200 if may_delete else 403)
    member = client.put(
        "/api/v1/projects/a/members/admin", json={"role": "Viewer"}, headers=basic(username)
    )
    assert member.status_code == (200 if may_delete else 403)  # managing: Managers only
    started = client.post(
        "/api/v1/workflows/process_series/runs",
        json={"series": [fresh_world.b.series]},
        headers=basic(username),
    )
    assert started.status_code in (403, 404)  # b's series: never, whatever the role


def test_storing_into_b_from_a_is_refused(fresh_world: World) -> None:
    client = fresh_world.app.test_client()
    intruder = study_of(SHARED_PATIENT, "intruder", instances=1).instances[0]
    intruder.StudyInstanceUID = fresh_world.b.study
    for url in ("/dicomweb/studies", "/dicomweb/projects/a/studies"):
        refused = stow(client, url, "a-manager", [intruder])
        assert refused.status_code == 409
        failure = refused.json["00081198"]["Value"][0]
        assert failure["00081197"]["Value"] == [0x0124]  # Refused: Not Authorized
    assert stow(client, "/dicomweb/projects/b/studies", "a-manager", [intruder]).status_code == 404
    with fresh_world.archive.engine.connect() as conn:
        stored = conn.execute(
            select(func.count())
            .select_from(Instance)
            .where(Instance.sop_instance_uid == intruder.SOPInstanceUID)
        ).scalar()
    assert stored == 0


def test_new_studies_from_a_member_of_several_projects_name_their_project(
    fresh_world: World,
) -> None:
    client = fresh_world.app.test_client()
    client.put(
        "/api/v1/projects/b/members/a-researcher", json={"role": "Researcher"}, headers=ADMIN
    )
    new = study_of(SHARED_PATIENT, "where-to", instances=1)
    ambiguous = stow(client, "/dicomweb/studies", "a-researcher", new.instances)
    assert ambiguous.status_code == 409
    assert "/dicomweb/projects/{name}/studies" in " ".join(ambiguous.headers.getlist("Warning"))
    assert (
        stow(client, "/dicomweb/projects/b/studies", "a-researcher", new.instances).status_code
        == 200
    )


# -- DIMSE --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver(world: World) -> Iterator[ReceiverHandle]:
    """The receiver, with PEER_A mapped to project a."""
    add_peer(world.archive, AE_OF_A)
    with world.archive.write_connection() as conn:
        give_peer_projects(conn, AE_OF_A, ["a"])
    settings = world.archive.settings.model_copy(update={"dicom_port": free_port()})
    handle = start_receiver(settings, world.archive)
    yield handle
    handle.stop()


def find(port: int, model: str, level: str, **keys: str) -> list[Dataset]:
    ae = AE(ae_title=AE_OF_A)
    ae.add_requested_context(model)
    assoc = ae.associate("127.0.0.1", port, ae_title="PACSFLOW")
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(identifier, keyword, value)
    found = [ds for status, ds in assoc.send_c_find(identifier, model) if ds is not None]
    assoc.release()
    return found


def test_c_find_answers_a_peer_with_its_projects_only(
    world: World, receiver: ReceiverHandle
) -> None:
    patients = find(
        receiver.port,
        PatientRootQueryRetrieveInformationModelFind,
        "PATIENT",
        PatientID="",
        NumberOfPatientRelatedStudies="",
        NumberOfPatientRelatedInstances="",
    )
    assert [(p.PatientID, p.NumberOfPatientRelatedStudies) for p in patients] == [
        (SHARED_PATIENT, 1)
    ]
    assert patients[0].NumberOfPatientRelatedInstances == len(world.a.instances)
    studies = find(
        receiver.port, StudyRootQueryRetrieveInformationModelFind, "STUDY", StudyInstanceUID=""
    )
    assert [s.StudyInstanceUID for s in studies] == [world.a.study]
    for level, key, uid in (
        ("STUDY", "StudyInstanceUID", world.b.study),
        ("SERIES", "SeriesInstanceUID", world.b.series),
    ):
        keys = {key: uid, **({"StudyInstanceUID": world.b.study} if level == "SERIES" else {})}
        assert find(receiver.port, StudyRootQueryRetrieveInformationModelFind, level, **keys) == []


def test_c_get_and_c_move_of_b_send_nothing(world: World, receiver: ReceiverHandle) -> None:
    ae = AE(ae_title=AE_OF_A)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    ae.add_requested_context(CTImageStorage)
    received: list[Dataset] = []

    def keep(event: Any) -> int:
        received.append(event.dataset)
        return 0x0000

    from pynetdicom import evt

    assoc = ae.associate(
        "127.0.0.1",
        receiver.port,
        ae_title="PACSFLOW",
        ext_neg=[build_role(CTImageStorage, scp_role=True)],
        evt_handlers=[(evt.EVT_C_STORE, keep)],
    )
    assert assoc.is_established
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "PATIENT"
    identifier.PatientID = SHARED_PATIENT
    statuses = [
        s.Status
        for s, _ in assoc.send_c_get(identifier, PatientRootQueryRetrieveInformationModelGet)
    ]
    moved = Dataset()
    moved.QueryRetrieveLevel = "STUDY"
    moved.StudyInstanceUID = world.b.study
    move_statuses = [
        status
        for status, _ in assoc.send_c_move(
            moved, AE_OF_A, StudyRootQueryRetrieveInformationModelMove
        )
    ]
    assoc.release()
    assert statuses[-1] == 0x0000
    assert {ds.SOPInstanceUID for ds in received} == {
        ds.SOPInstanceUID for ds in world.a.instances
    }  # the shared patient's studies of a only
    assert all(getattr(s, "NumberOfCompletedSuboperations", 0) == 0 for s in move_statuses)
    assert all(s.Status != 0xFF00 for s in move_statuses)  # nothing pending: nothing sent


def test_c_store_to_a_project_ae_title_puts_the_study_in_it(
    world: World, receiver: ReceiverHandle
) -> None:
    ds = study_of(SHARED_PATIENT, "by-ae", instances=1).instances[0]
    ae = AE(ae_title=AE_OF_A)
    ae.add_requested_context(CTImageStorage, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", receiver.port, ae_title="PROJ_A")
    assert assoc.is_established
    assert assoc.send_c_store(ds).Status == 0x0000
    assoc.release()
    with world.archive.engine.connect() as conn:
        projects = (
            conn.execute(
                select(StudyProject.project_fk)
                .join(Study, Study.id == StudyProject.study_fk)
                .where(Study.study_instance_uid == ds.StudyInstanceUID)
            )
            .scalars()
            .all()
        )
    assert projects == [1]
    app_archive: Archive = world.app.extensions[ARCHIVE_EXTENSION]
    assert app_archive is not world.archive  # the app reads it through its own connection
    client = world.app.test_client()
    listed = client.get(
        "/dicomweb/studies",
        query_string={"StudyInstanceUID": ds.StudyInstanceUID},
        headers=basic("a-viewer"),
    ).json
    assert len(listed) == 1


def test_the_workflows_account_reads_and_writes_everywhere_but_manages_nothing(
    world: World,
) -> None:
    """Airflow's tasks fetch any series, store results and route studies into projects;
    they delete nothing, manage nobody and read no audit trail."""
    client = world.app.test_client()
    password = service_password(world.archive.settings)
    account = basic(SERVICE_USER, password)
    studies = client.get("/dicomweb/studies", headers=account).json
    assert {world.a.study, world.b.study} <= {s["0020000D"]["Value"][0] for s in studies}
    result = study_of(SHARED_PATIENT, "a-result", instances=1).instances[0]
    result.StudyInstanceUID = world.b.study
    assert stow(client, "/dicomweb/studies", SERVICE_USER, [result], password).status_code == 200
    routed = client.put(f"/api/v1/projects/a/studies/{world.b.study}", headers=account)
    assert routed.status_code == 204
    refused = [
        client.delete(f"/dicomweb/studies/{world.b.study}", headers=account),
        client.put(
            "/api/v1/projects/a/members/a-viewer", json={"role": "Manager"}, headers=account
        ),
        client.delete(f"/api/v1/projects/a/studies/{world.b.study}", headers=account),
        client.post("/api/v1/projects", json={"name": "c"}, headers=account),
        client.get("/api/v1/audit", headers=account),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    taken_back = client.delete(f"/api/v1/projects/a/studies/{world.b.study}", headers=ADMIN)
    assert taken_back.status_code == 204
