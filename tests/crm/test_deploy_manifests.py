"""The deployment files hold together: deploy/compose.yaml and deploy/k8s/.

No Docker engine or Kubernetes cluster runs on the build machines, so these files are not
run in CI; these tests read them and check what an operator relies on: every Celery queue
has its workers, exactly one beat, web and workers reach PostgreSQL through PgBouncer in
transaction pooling, the migration runs once before them, probes and resources are set,
and no secret is written in the files.
"""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from crm.celery import QUEUES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|_KEY|KEYS|TOKEN", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z_]+(:?[-?][^}]*)?\}$")


def _resolved(value: str) -> str:
    """``value`` with each compose ``${...}`` interpolation replaced by ``FROM-ENV``."""
    return re.sub(r"\$\{[^}]*\}", "FROM-ENV", value)


def _command(value) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(part) for part in value]


def _queues_of(command: list[str]) -> list[str]:
    """The queues a ``celery ... worker -Q a,b`` command consumes (none if not a worker)."""
    if "worker" not in command:
        return []
    for index, part in enumerate(command):
        if part == "-Q":
            return command[index + 1].split(",")
        if part.startswith("--queues="):
            return part.split("=", 1)[1].split(",")
    return ["default"]


# --- compose --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _services_running(compose: dict, word: str) -> dict[str, dict]:
    return {
        name: service
        for name, service in compose["services"].items()
        if word in _command(service.get("command", []))
    }


def test_compose_has_one_worker_service_per_queue(compose):
    consumed = [
        queue
        for service in compose["services"].values()
        for queue in _queues_of(_command(service.get("command", [])))
    ]
    assert sorted(consumed) == sorted(QUEUES)


def test_compose_runs_exactly_one_beat(compose):
    beats = _services_running(compose, "beat")
    assert list(beats) == ["beat"]
    assert beats["beat"]["deploy"]["replicas"] == 1


def test_compose_web_and_workers_go_through_pgbouncer_in_transaction_mode(compose):
    app_services = {**_services_running(compose, "worker"), **_services_running(compose, "beat")}
    app_services["web"] = compose["services"]["web"]
    assert _command(app_services["web"]["command"])[0] == "gunicorn"
    for name, service in app_services.items():
        env = service["environment"]
        url = urlsplit(_resolved(env["DATABASE_URL"]))
        assert (url.hostname, url.port) == ("pgbouncer", 6432), name
        assert env["DATABASE_POOLER"] == "pgbouncer", name
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    bouncer = configparser.ConfigParser(strict=False, allow_no_value=True)
    bouncer.read_string(
        "\n".join(
            line
            for line in (DEPLOY / "pgbouncer" / "pgbouncer.ini").read_text().splitlines()
            if not line.startswith("%include")
        )
    )
    assert bouncer["pgbouncer"]["pool_mode"] == "transaction"
    assert compose["services"]["pgbouncer"]["environment"]["DB_HOST"] == "postgres"


def test_compose_migrates_once_straight_to_postgres(compose):
    migrate = compose["services"]["migrate"]
    assert _command(migrate["command"])[-3:] == ["manage.py", "migrate", "--noinput"]
    assert migrate["restart"] == "no"
    url = urlsplit(_resolved(migrate["environment"]["DATABASE_URL"]))
    assert (url.hostname, url.port) == ("postgres", 5432)


def test_compose_redis_persists_and_never_evicts(compose):
    command = " ".join(_command(compose["services"]["redis"]["command"]))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_compose_writes_no_secret(compose):
    """Secrets come from deploy/.env (git-ignored): every secret-named variable, and the
    password of every URL, is a ${...} interpolation."""
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAMES.search(key):
                assert INTERPOLATION.match(str(value)), f"{name}: {key}"
            if "://" in str(value):
                password = urlsplit(_resolved(str(value))).password
                assert password in (None, "FROM-ENV"), f"{name}: {key}"
        assert not service.get("env_file") or service["env_file"][0]["path"] == ".env"
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored
    assert not (DEPLOY / ".env").exists() or ".env" in ignored


# --- Kubernetes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def k8s() -> list[dict]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    files = set(kustomization["resources"])
    assert files == {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    return [
        document
        for name in sorted(files)
        for document in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text())
        if document
    ]


def _kind(k8s: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in k8s if doc["kind"] == kind}


def _containers(doc: dict) -> list[dict]:
    return doc["spec"]["template"]["spec"]["containers"]


def _env(container: dict) -> dict[str, object]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_k8s_has_a_worker_deployment_per_queue(k8s):
    deployments = _kind(k8s, "Deployment")
    consumed = {
        name: _queues_of(_command(_containers(doc)[0].get("command", [])))
        for name, doc in deployments.items()
    }
    assert sorted(q for queues in consumed.values() for q in queues) == sorted(QUEUES)
    for queue in QUEUES:
        assert consumed[f"worker-{queue}"] == [queue]


def test_k8s_beat_is_a_single_replica_recreated(k8s):
    beats = {
        name
        for name, doc in _kind(k8s, "Deployment").items()
        if "beat" in _command(_containers(doc)[0].get("command", []))
    }
    assert beats == {"beat"}
    beat = _kind(k8s, "Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"


def test_k8s_web_has_probes_a_service_and_uses_gunicorn(k8s):
    web = _kind(k8s, "Deployment")["web"]
    container = _containers(web)[0]
    assert container["command"][0] == "gunicorn"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    service = _kind(k8s, "Service")["web"]
    assert service["spec"]["selector"] == web["spec"]["selector"]["matchLabels"]
    bouncer = _kind(k8s, "Service")["pgbouncer"]
    assert (
        bouncer["spec"]["selector"]
        == _kind(k8s, "Deployment")["pgbouncer"]["spec"]["selector"]["matchLabels"]
    )


def test_k8s_migrations_are_a_job_straight_to_postgres(k8s):
    job = _kind(k8s, "Job")["migrate"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][-3:] == ["manage.py", "migrate", "--noinput"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert "@$(DATABASE_HOST):5432/" in _env(container)["DATABASE_URL"]
    assert _env(container)["DATABASE_POOLER"] == ""


def test_k8s_app_pods_go_through_pgbouncer_with_resources_and_secrets(k8s):
    config = _kind(k8s, "ConfigMap")["crm-config"]["data"]
    assert config["DATABASE_POOLER"] == "pgbouncer"
    for name, doc in _kind(k8s, "Deployment").items():
        for container in _containers(doc):
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
            assert resources["limits"]["memory"], name
            if name == "pgbouncer":
                continue
            assert "@pgbouncer:6432/" in _env(container)["DATABASE_URL"], name
            sources = [next(iter(source.values()))["name"] for source in container["envFrom"]]
            assert sources == ["crm-config", "crm-secrets"], name
            assert container["image"] == "club-crm"
            assert doc["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_k8s_writes_no_secret(k8s):
    """The Secret is created by the operator (config.yaml says how), never committed; no
    secret-named variable has a literal value; ConfigMap data holds none."""
    assert _kind(k8s, "Secret") == {}
    for doc in k8s:
        if doc["kind"] == "ConfigMap":
            assert not [key for key in doc["data"] if SECRET_NAMES.search(key)]
        if doc["kind"] not in ("Deployment", "Job"):
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            for key, value in _env(container).items():
                if SECRET_NAMES.search(key):
                    assert isinstance(value, dict) and "secretKeyRef" in value, key
                if isinstance(value, str) and "://" in value:
                    assert ":$(DATABASE_PASSWORD)@" in value, key


# --- the web tier's gunicorn settings -------------------------------------------------------


def _dockerfile_cmd() -> list[str]:
    line = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD")
    )
    return yaml.safe_load(line.removeprefix("CMD"))


def test_every_web_command_leaves_gunicorns_settings_to_its_config_file(compose, k8s):
    # gunicorn.conf.py is the one place the worker class, threads and keep-alive are
    # written: a flag in one manifest would make that deployment differ from the others.
    commands = {
        "image": _dockerfile_cmd(),
        "compose": _command(compose["services"]["web"]["command"]),
        "k8s": _containers(_kind(k8s, "Deployment")["web"])[0]["command"],
    }
    assert commands == {where: ["gunicorn", "crm.wsgi"] for where in commands}


def test_web_pods_share_a_writable_metrics_folder_between_workers(compose, k8s):
    web = compose["services"]["web"]
    folder = web["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    assert any(mount.split(":")[0] == folder for mount in web["tmpfs"])
    container = _containers(_kind(k8s, "Deployment")["web"])[0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {
        v["name"]: v for v in _kind(k8s, "Deployment")["web"]["spec"]["template"]["spec"]["volumes"]
    }
    assert "emptyDir" in volumes[mounts[env["PROMETHEUS_MULTIPROC_DIR"]]]
