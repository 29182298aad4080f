"""The Helm chart: helm lint, helm template, and the rendered manifests checked strictly
against Kubernetes' schemas (kubernetes-validate), with default and production-like values.

Nothing is installed in a cluster here: no Kubernetes runs on the test machine.
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import REPO, VENV_BIN, settings_from, tool

CHART = REPO / "helm" / "pacsflow"
KUBERNETES = "1.33.0"  # the version manifests are rendered for and validated against
VALUES = {
    "default": [],
    "production": ["ci/production-values.yaml"],
    "kubernetes-executor": ["ci/kubernetes-executor-values.yaml"],
}
Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def helm() -> Path:
    return tool("helm", REPO / ".tools" / "bin")


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120)


def render(helm: Path, *options: str) -> list[Manifest]:
    done = helm_run(
        helm, "template", "lab", str(CHART), "--namespace", "imaging",
        "--kube-version", KUBERNETES, *options,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def values_options(name: str) -> list[str]:
    return [option for path in VALUES[name] for option in ("-f", str(CHART / path))]


@pytest.fixture(scope="module", params=list(VALUES))
def rendered(request: pytest.FixtureRequest, helm: Path) -> tuple[str, list[Manifest]]:
    return request.param, render(helm, *values_options(request.param))


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    (found,) = (m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name)
    return found


def pod_template(manifests: list[Manifest]) -> Manifest:
    config = find(manifests, "ConfigMap", "lab-pacsflow-pod-template")
    pod: Manifest = yaml.safe_load(config["data"]["pod-template.yaml"])
    return pod


def pods(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Every pod spec by workload name (and the KubernetesExecutor's task pod template)."""
    specs = {
        m["metadata"]["name"]: m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in ("Deployment", "StatefulSet", "Job")
    }
    if any(m["metadata"]["name"] == "lab-pacsflow-pod-template" for m in manifests):
        specs["task pod"] = pod_template(manifests)["spec"]
    return specs


def pacsflow_containers(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        f"{name}/{container['name']}": container
        for name, spec in pods(manifests).items()
        for container in spec.get("initContainers", []) + spec["containers"]
        if container["image"].endswith("pacsflow:0.1.0")
    }


@pytest.mark.parametrize("values", list(VALUES))
def test_the_chart_lints(helm: Path, values: str) -> None:
    done = helm_run(helm, "lint", "--strict", str(CHART), *values_options(values))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


def test_manifests_pass_kubernetes_validate_strict(
    rendered: tuple[str, list[Manifest]], tmp_path: Path
) -> None:
    name, manifests = rendered
    documents = manifests + ([pod_template(manifests)] if name == "kubernetes-executor" else [])
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump_all(documents))
    validate = tool("kubernetes-validate", VENV_BIN)
    done = subprocess.run(
        [str(validate), "--strict", "--kubernetes-version", KUBERNETES, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed for resource") == len(documents)


def test_every_pacsflow_container_gets_valid_settings(
    rendered: tuple[str, list[Manifest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settings the chart writes parse, and all processes agree on where the others are."""
    _, manifests = rendered
    containers = pacsflow_containers(manifests)
    assert len(containers) >= 9
    for where, container in containers.items():
        environment = {
            e["name"]: e.get("value", "postgresql://pacsflow@db/x")  # secrets: a valid stand-in
            for e in container["env"]
        }
        settings = settings_from(environment, monkeypatch)
        assert settings.web_url == "http://lab-pacsflow-web:8000", where
        assert settings.airflow_url == "http://lab-pacsflow-airflow-api-server:8080", where
        # The secrets all processes must agree on come from the one Secret.
        secrets = {
            e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
            for e in container["env"]
            if "valueFrom" in e
        }
        assert secrets["AIRFLOW__API_AUTH__JWT_SECRET"] == "airflow-jwt-secret", where
        assert secrets["AIRFLOW__CORE__FERNET_KEY"] == "airflow-fernet-key", where
        mounts = {m["mountPath"]: m.get("subPath") for m in container["volumeMounts"]}
        assert mounts["/var/lib/pacsflow/service_password"] == "service-password", where


def test_pods_run_unprivileged(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    for name, spec in pods(manifests).items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        for container in spec.get("initContainers", []) + spec["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert "resources" in container, name


def test_default_values_run_everything_in_the_release(helm: Path) -> None:
    manifests = render(helm)
    workloads = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    for kind, name in [
        ("Deployment", "web"),
        ("Deployment", "receiver"),
        ("Deployment", "dispatcher"),
        ("Deployment", "airflow-api-server"),
        ("Deployment", "airflow-scheduler"),
        ("Deployment", "airflow-dag-processor"),
        ("Deployment", "airflow-triggerer"),
        ("StatefulSet", "airflow-worker"),
        ("StatefulSet", "postgresql"),
        ("StatefulSet", "redis"),
        ("StatefulSet", "opensearch"),
        ("Deployment", "opensearch-dashboards"),
        ("Job", "migrate-1"),
        ("Job", "dashboards-import-1"),
        ("PersistentVolumeClaim", "archive"),
    ]:
        assert (kind, f"lab-pacsflow-{name}") in workloads
    receiver = find(manifests, "Service", "lab-pacsflow-receiver")["spec"]
    assert receiver["type"] == "LoadBalancer"
    assert receiver["ports"] == [{"name": "dicom", "port": 11112, "targetPort": "dicom"}]
    secret = find(manifests, "Secret", "lab-pacsflow")["data"]
    assert len(base64.urlsafe_b64decode(base64.b64decode(secret["airflow-fernet-key"]))) == 32
    assert (
        base64.b64decode(secret["database-url"])
        .decode()
        .endswith("@lab-pacsflow-postgresql:5432/pacsflow")
    )
    saved = find(manifests, "ConfigMap", "lab-pacsflow-dashboards-saved-objects")["data"]
    assert (
        saved["pacsflow.ndjson"] == (CHART / "files" / "opensearch-dashboards.ndjson").read_text()
    )


def test_production_values_use_external_services(helm: Path) -> None:
    manifests = render(helm, *values_options("production"))
    kinds = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    # Secrets come from pacsflow-secrets, the archive's objects go to S3.
    made = {name for kind, name in kinds if kind in ("Secret", "PersistentVolumeClaim")}
    assert made == {"lab-pacsflow-airflow-logs"}
    assert not any(name.endswith(("postgresql", "redis", "opensearch")) for _, name in kinds)
    env = {e["name"]: e for e in pacsflow_containers(manifests)["lab-pacsflow-web/web"]["env"]}
    assert env["PACSFLOW_STORAGE_URL"]["value"] == "s3://lab-imaging-archive/pacsflow"
    assert env["PACSFLOW_SEARCH_URL"]["value"] == "https://opensearch.example.org:9200"
    assert env["PACSFLOW_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "pacsflow-secrets"
    assert env["AIRFLOW__API__BASE_URL"]["value"] == "https://airflow.pacsflow.example.org"
    ingress = find(manifests, "Ingress", "lab-pacsflow")["spec"]
    assert [rule["host"] for rule in ingress["rules"]] == ingress["tls"][0]["hosts"]
    receiver = find(manifests, "NetworkPolicy", "lab-pacsflow-receiver")["spec"]["ingress"]
    assert receiver == [
        {
            "ports": [{"port": 11112, "protocol": "TCP"}],
            "from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
        }
    ]
    internal = find(manifests, "NetworkPolicy", "lab-pacsflow-internal")["spec"]
    assert internal["podSelector"] == {"matchLabels": {"app.kubernetes.io/instance": "lab"}}


def test_the_kubernetes_executor_runs_tasks_in_pods(helm: Path) -> None:
    manifests = render(helm, *values_options("kubernetes-executor"))
    names = {m["metadata"]["name"] for m in manifests}
    assert "lab-pacsflow-airflow-worker" not in names and "lab-pacsflow-redis" not in names
    scheduler = find(manifests, "Deployment", "lab-pacsflow-airflow-scheduler")["spec"]["template"]
    assert scheduler["spec"]["serviceAccountName"] == "lab-pacsflow-airflow-scheduler"
    assert scheduler["spec"]["automountServiceAccountToken"] is True
    binding = find(manifests, "RoleBinding", "lab-pacsflow-airflow-scheduler")
    assert binding["subjects"][0]["name"] == "lab-pacsflow-airflow-scheduler"
    task = pod_template(manifests)["spec"]
    assert [c["name"] for c in task["containers"]] == ["base"]
    assert task["automountServiceAccountToken"] is False
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in task["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {"lab-pacsflow-airflow-logs"}  # the archive's files are not the tasks'
    web = find(manifests, "Deployment", "lab-pacsflow-web")["spec"]["template"]["spec"]
    assert {"name": "archive", "persistentVolumeClaim": {"claimName": "lab-archive"}} in web[
        "volumes"
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--set", "postgresql.enabled=false"], "give the database URLs in secrets.existingSecret"),
        (["--set", "redis.enabled=false"], "give the Celery broker URL in secrets.existingSecret"),
        (["--set", "search.url=https://os:9200"], "set opensearch.enabled to false"),
    ],
)
def test_incomplete_values_are_refused_with_what_to_do(
    helm: Path, options: list[str], message: str
) -> None:
    done = helm_run(helm, "template", "lab", str(CHART), "--kube-version", KUBERNETES, *options)
    assert done.returncode != 0 and message in done.stderr
