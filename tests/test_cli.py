import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydicom.data import get_testdata_file

from pacsflow.cli import main
from pacsflow.settings import Settings


@pytest.fixture
def env(settings: Settings) -> dict[str, str]:
    return {
        "PACSFLOW_HOME": str(settings.home),
        "PACSFLOW_DATABASE_URL": settings.sqlalchemy_url,
        "PACSFLOW_ADMIN_PASSWORD": "cli-admin-password",
    }


def test_import_counts_and_fsck(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "incoming" / "nested"
    folder.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name), folder / name)
    shutil.copy(get_testdata_file("MR_small_implicit.dcm"), folder / "conflict.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    runner = CliRunner()
    result = runner.invoke(main, ["import", "--jobs", "1", str(tmp_path / "incoming")], env=env)
    assert result.exit_code == 1, result.output  # one conflicting duplicate is rejected
    assert "2 stored, 0 duplicate, 0 replaced, 1 rejected, 1 not DICOM" in result.output
    assert "already stored with different content" in result.output
    again = runner.invoke(main, ["import", str(folder / "CT_small.dcm")], env=env)
    assert "0 stored, 1 duplicate" in again.output and again.exit_code == 0
    check = runner.invoke(main, ["fsck", "--verify"], env=env)
    assert check.exit_code == 0 and "checked 2 instances: OK" in check.output


def test_users_commands(env: dict[str, str]) -> None:
    runner = CliRunner()
    created = runner.invoke(
        main,
        ["users", "create", "alice", "--role", "Researcher"],
        env={**env, "PACSFLOW_NEW_USER_PASSWORD": "alice-password"},
    )
    assert created.exit_code == 0, created.output
    listing = runner.invoke(main, ["users", "list"], env=env)
    assert "alice\tResearcher" in listing.output and "admin\tAdmin" in listing.output
    bad_role = runner.invoke(
        main,
        ["users", "create", "bob", "--role", "Pilot"],
        env={**env, "PACSFLOW_NEW_USER_PASSWORD": "x-password"},
    )
    assert bad_role.exit_code != 0 and "Pilot" in bad_role.output
    assert runner.invoke(main, ["users", "delete", "alice"], env=env).exit_code == 0
    assert "alice" not in runner.invoke(main, ["users", "list"], env=env).output


def test_bad_setting_stops_with_a_clear_error(env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["fsck"], env={**env, "PACSFLOW_HTTP_PORT": "x"})
    assert result.exit_code != 0 and "PACSFLOW_HTTP_PORT" in result.output


def test_ae_commands(env: dict[str, str]) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["ae", "add", "CT_SCANNER"], env=env)
    assert added.exit_code == 0, added.output
    move = ["ae", "add", "WORKSTATION", "--host", "10.1.2.3", "--port", "104", "--no-connect"]
    assert runner.invoke(main, move, env=env).exit_code == 0
    listing = runner.invoke(main, ["ae", "list"], env=env).output
    assert "CT_SCANNER\t-\tmay connect" in listing
    assert "WORKSTATION\t10.1.2.3:104\tmove destination only" in listing
    again = runner.invoke(main, ["ae", "add", "CT_SCANNER"], env=env)
    assert again.exit_code != 0 and "already registered" in again.output
    half = runner.invoke(main, ["ae", "add", "PACS2", "--host", "pacs2"], env=env)
    assert half.exit_code != 0 and "--host and --port" in half.output
    bad = runner.invoke(main, ["ae", "add", "BACK\\SLASH"], env=env)
    assert bad.exit_code != 0 and "without backslash" in bad.output
    assert runner.invoke(main, ["ae", "remove", "CT_SCANNER"], env=env).exit_code == 0
    missing = runner.invoke(main, ["ae", "remove", "CT_SCANNER"], env=env)
    assert missing.exit_code != 0 and "no AE titled" in missing.output


def test_project_commands(env: dict[str, str]) -> None:
    runner = CliRunner()
    added = runner.invoke(main, ["project", "add", "lung", "--ae-title", "LUNG"], env=env)
    assert added.exit_code == 0, added.output
    assert runner.invoke(main, ["project", "add", "liver"], env=env).exit_code == 0
    listing = runner.invoke(main, ["project", "list"], env=env).output
    assert listing.splitlines() == ["liver\t-\t0\t", "lung\tLUNG\t0\t"]
    bad = runner.invoke(main, ["project", "add", "Lung Study"], env=env)
    assert bad.exit_code != 0 and "cannot name a project" in bad.output
    taken = runner.invoke(main, ["project", "add", "heart", "--ae-title", "LUNG"], env=env)
    assert taken.exit_code != 0 and "exists" in taken.output
    peer = runner.invoke(main, ["ae", "add", "WORKSTATION", "--project", "lung"], env=env)
    assert peer.exit_code == 0, peer.output
    unknown = runner.invoke(main, ["ae", "add", "OTHER", "--project", "nope"], env=env)
    assert unknown.exit_code != 0 and "no project named 'nope'" in unknown.output
    assert "OTHER" not in runner.invoke(main, ["ae", "list"], env=env).output
