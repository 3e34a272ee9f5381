"""The subsidyhub chart, checked with the real helm binary and strict Kubernetes schemas.

``helm lint --strict`` on the defaults and on ci/all-options-values.yaml (every option set);
every document ``helm template`` renders passes strict kubernetes-validate on the oldest and
newest supported versions; bad values fail with the message an admin needs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from subsidyhub.ledger.db import Database
from subsidyhub.service.app import create_app
from subsidyhub.settings import parse_settings
from tests.k8s.conftest import CHART, K8S_VERSIONS, quantity

ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
REQUIRED = ["--set", "secret.hubToken=t0ken", "--set", "secret.databaseUrl=postgresql://db/s"]
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
CRD_KINDS = {"ServiceMonitor"}  # not in the core schemas; checked field by field below


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)


def render(helm: Path, *args: str) -> list[dict]:
    result = helm_run(helm, "template", "subsidyhub", str(CHART), *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict]) -> dict[str, dict]:
    """Documents by kind; ConfigMaps (the config and the dashboard) by kind/name."""
    return {
        f"ConfigMap/{doc['metadata']['name']}" if doc["kind"] == "ConfigMap" else doc["kind"]: doc
        for doc in docs
    }


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_OPTIONS)]], ids=["defaults", "all-options"])
def test_lint_strict(helm, values):
    result = helm_run(helm, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    "values", [REQUIRED, ["-f", str(ALL_OPTIONS)]], ids=["defaults", "all-options"]
)
def test_rendered_documents_are_strictly_valid(helm, values):
    docs = render(helm, *values)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def test_all_options_render_what_they_set(helm):
    docs = by_kind(render(helm, "-f", str(ALL_OPTIONS)))
    options = yaml.safe_load(ALL_OPTIONS.read_text())
    deployment = docs["Deployment"]
    assert deployment["spec"]["replicas"] == 3
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 2000
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert quantity(container["resources"]["limits"]["memory"]) == 2**30
    assert quantity(container["resources"]["requests"]["cpu"]) == quantity("200m")
    env = {e["name"]: e for e in container["env"]}
    assert env["JUPYTERHUB_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "hub-token"
    assert env["SUBSIDYHUB_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["key"] == "database-url"
    assert env["JUPYTERHUB_SERVICE_URL"]["value"] == "http://0.0.0.0:8080"
    # The ConfigMap holds subsidyhub.yaml, and it is a valid SubsidyHub config.
    config = yaml.safe_load(docs["ConfigMap/subsidyhub-config"]["data"]["subsidyhub.yaml"])
    assert config == options["config"]
    assert parse_settings(config, "ConfigMap").backend == "kubernetes"
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    peers = docs["NetworkPolicy"]["spec"]["ingress"][0]["from"]
    assert {"app": "jupyterhub", "component": "singleuser-server", "release": "jhub"} in [
        p.get("podSelector", {}).get("matchLabels") for p in peers
    ]
    monitor = docs["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/services/subsidy/metrics"
    assert endpoint["authorization"]["credentials"] == {
        "name": "subsidyhub-metrics-token",
        "key": "token",
    }


def test_dashboard_config_map_is_the_shipped_dashboard(helm):
    assert "ConfigMap/subsidyhub-dashboard" not in by_kind(render(helm, *REQUIRED))
    docs = by_kind(render(helm, "-f", str(ALL_OPTIONS)))
    dashboard = docs["ConfigMap/subsidyhub-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "SubsidyHub"}
    shipped = json.loads((CHART / "dashboards" / "subsidyhub.json").read_text())
    assert json.loads(dashboard["data"]["subsidyhub.json"]) == shipped


def test_existing_secret_creates_none(helm):
    docs = render(helm, "--set", "secret.existingSecret=mine")
    assert "Secret" not in by_kind(docs)
    env = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    assert refs == {"mine"}


@pytest.mark.parametrize("prefix", ["/services/subsidy/", "/services/credits/"])
def test_probes_call_the_service_health_routes(helm, prefix):
    """Each probe's path is a route of the real service app, under the configured prefix."""
    docs = render(helm, *REQUIRED, "--set", f"service.prefix={prefix}")
    container = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    paths = {kind: container[kind]["httpGet"]["path"] for kind in PROBES}
    assert paths == {
        "startupProbe": f"{prefix}health/live",
        "readinessProbe": f"{prefix}health/ready",
        "livenessProbe": f"{prefix}health/live",
    }
    settings = parse_settings({}, "test")
    app = create_app(settings, Database("sqlite://"), prefix=prefix, hub_api_url="http://hub/")
    assert set(paths.values()) <= set(app.openapi()["paths"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "bogus=1"], "additional properties 'bogus' not allowed"),
        (["--set", "replicaCount=0"], "/replicaCount"),
        (["--set", "image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set", "service.prefix=/subsidy/"], "/service/prefix"),
        (["--set", "networkPolicy.enable=true"], "additional properties 'enable' not allowed"),
        (["--set", "config.database_url=sqlite://"], "/config"),
        (["--set", "securityContext.runAsUser=0"], "/securityContext/runAsUser"),
        ([], "secret.hubToken is required"),
        (["--set", "secret.hubToken=t"], "secret.databaseUrl is required"),
        (
            ["--set", "secret.hubToken=t", "--set", "secret.databaseUrl=sqlite:///x"],
            "replicaCount > 1 needs PostgreSQL",
        ),
        ([*REQUIRED, "--set", "serviceMonitor.enabled=true"], "serviceMonitor.tokenSecret.name"),
    ],
)
def test_bad_values_fail_with_the_message(helm, args, message):
    result = helm_run(helm, "template", "subsidyhub", str(CHART), *args)
    assert result.returncode != 0
    assert message in result.stderr


def _described(schema: dict, path: str = "") -> list[str]:
    """Paths of schema nodes with properties lacking a description or additionalProperties: false."""
    problems = []
    if "description" not in schema:
        problems.append(f"{path or '/'}: no description")
    if "properties" in schema:
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path or '/'}: additionalProperties is not false")
        for name, sub in schema["properties"].items():
            problems.extend(_described(sub, f"{path}/{name}"))
    return problems


def test_schema_is_strict_and_described():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert _described(schema) == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == set(schema["properties"])


def test_all_options_file_sets_every_option():
    schema = json.loads((CHART / "values.schema.json").read_text())
    options = yaml.safe_load(ALL_OPTIONS.read_text())

    def missing(node: dict, value: object, path: str) -> list[str]:
        if "properties" not in node:
            return []
        assert isinstance(value, dict), path
        out = []
        for name, sub in node["properties"].items():
            if name not in value:
                out.append(f"{path}.{name}")
            else:
                out.extend(missing(sub, value[name], f"{path}.{name}"))
        return out

    assert missing(schema, options, "") == []
