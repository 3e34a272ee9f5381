"""The subsidyhub chart, checked with the real helm binary and strict Kubernetes schemas.

``helm lint --strict`` on the defaults and on ci/all-options-values.yaml (every option set);
every document ``helm template`` renders passes strict kubernetes-validate on the oldest, a
middle and the newest supported versions; bad values, and values removed in 0.2.0, fail with
the message an admin needs. How the chart meets z2jh (tokens, names, network flows) is in
test_network_flows.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from subsidyhub.ledger.db import Database
from subsidyhub.service.app import create_app
from subsidyhub.settings import load_settings, parse_settings
from tests.k8s.charts import CHART
from tests.k8s.conftest import quantity

ALL_OPTIONS = CHART / "ci" / "all-options-values.yaml"
SCHEMA = json.loads((CHART / "values.schema.json").read_text())
REQUIRED = ["--set", "secret.databaseUrl=postgresql://db/s"]
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
CRD_KINDS = {"ServiceMonitor"}  # not in the core schemas; checked field by field below
# Chart.yaml's kubeVersion floor (z2jh 4.4 needs 1.28), a middle one and the newest.
K8S_VERSIONS = ("1.28", "1.32", "1.37")
# Values removed in chart 0.2.0 → where they moved; each must fail naming both.
MOVED = {
    "hub.apiUrl": "jupyterhub.apiUrl",
    "networkPolicy.jupyterhubRelease": "jupyterhub.release",
    "secret.hubToken": "jupyterhub.hubTokenSecret",
}


def helm_run(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, check=False)


def render(helm: Path, *args: str) -> list[dict]:
    result = helm_run(helm, "template", "subsidyhub", str(CHART), *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_fails(helm: Path, *args: str) -> str:
    """helm's error for values that must not render."""
    result = helm_run(helm, "template", "subsidyhub", str(CHART), *args)
    assert result.returncode != 0, "rendered although it should have failed"
    return result.stderr


def by_kind(docs: list[dict]) -> dict[str, dict]:
    """Documents by kind; ConfigMaps (the config and the dashboard) by kind/name."""
    return {
        f"ConfigMap/{doc['metadata']['name']}" if doc["kind"] == "ConfigMap" else doc["kind"]: doc
        for doc in docs
    }


def container_env(docs: list[dict]) -> dict[str, dict]:
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    return {e["name"]: e for e in pod["containers"][0]["env"]}


def secret_ref(env: dict[str, dict], name: str) -> dict[str, str]:
    return env[name]["valueFrom"]["secretKeyRef"]


@pytest.mark.parametrize("values", [[], ["-f", str(ALL_OPTIONS)]], ids=["defaults", "all-options"])
def test_lint_strict(helm, values):
    result = helm_run(helm, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize(
    "values", [REQUIRED, ["-f", str(ALL_OPTIONS)]], ids=["defaults", "all-options"]
)
def test_rendered_documents_are_strictly_valid(helm, values, version):
    docs = render(helm, *values, "--kube-version", version)
    kinds = {doc["kind"] for doc in docs}
    assert {"Deployment", "Service", "ConfigMap", "NetworkPolicy", "PodDisruptionBudget"} <= kinds
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_kubernetes_older_than_z2jh_4_4_needs_is_refused(helm):
    assert "kubeVersion" in render_fails(helm, *REQUIRED, "--kube-version", "1.27")


def test_all_options_render_what_they_set(helm, tmp_path):
    docs = by_kind(render(helm, "-f", str(ALL_OPTIONS)))
    options = yaml.safe_load(ALL_OPTIONS.read_text())
    deployment = docs["Deployment"]
    assert deployment["metadata"]["name"] == "gpu-credits"  # fullnameOverride
    assert deployment["spec"]["replicas"] == 3
    pod_template = deployment["spec"]["template"]
    assert pod_template["metadata"]["labels"]["example.org/cost-centre"] == "research-computing"
    assert pod_template["metadata"]["labels"]["app.kubernetes.io/name"] == "credits"
    pod = pod_template["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 2000
    [container] = pod["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert quantity(container["resources"]["limits"]["memory"]) == 2**30
    assert quantity(container["resources"]["requests"]["cpu"]) == quantity("200m")
    env = {e["name"]: e for e in container["env"]}
    assert secret_ref(env, "JUPYTERHUB_API_TOKEN") == {
        "name": "jh-hub",
        "key": "hub.services.subsidy.apiToken",
    }
    assert secret_ref(env, "SUBSIDYHUB_DATABASE_URL") == {
        "name": "gpu-credits-secret",
        "key": "database-url",
    }
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://jh-hub.jhub.svc:8081/hub/api"
    assert env["JUPYTERHUB_SERVICE_URL"]["value"] == "http://0.0.0.0:8080"
    assert docs["PodDisruptionBudget"]["spec"]["minAvailable"] == 2
    peers = docs["NetworkPolicy"]["spec"]["ingress"][0]["from"]
    assert {"app": "jupyterhub", "component": "singleuser-server", "release": "jhub"} in [
        p.get("podSelector", {}).get("matchLabels") for p in peers
    ]
    assert options["networkPolicy"]["extraIngressFrom"][0] in peers
    assert (
        docs["NetworkPolicy"]["spec"]["ingress"][1]["from"]
        == (options["networkPolicy"]["metricsFrom"])
    )
    egress = docs["NetworkPolicy"]["spec"]["egress"]
    database_rule = next(r for r in egress if r["ports"] == [{"port": 5433, "protocol": "TCP"}])
    assert database_rule["to"] == options["networkPolicy"]["database"]["to"]
    assert egress[-1] == options["networkPolicy"]["extraEgress"][0]
    monitor = docs["ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/services/subsidy/metrics"
    assert endpoint["authorization"]["credentials"] == {
        "name": "subsidyhub-metrics-token",
        "key": "token",
    }
    # The ConfigMap holds subsidyhub.yaml and the catalog beside it; written out as the pods
    # see them, they load as a valid config whose profiles use the catalog's images.
    data = docs["ConfigMap/gpu-credits"]["data"]
    config = yaml.safe_load(data["subsidyhub.yaml"])
    assert config == options["config"] | {"image_catalog": "catalog.yaml"}
    assert yaml.safe_load(data["catalog.yaml"]) == options["catalog"]
    for name, text in data.items():
        (tmp_path / name).write_text(text)
    settings = load_settings(tmp_path / "subsidyhub.yaml")
    assert settings.backend == "kubernetes"
    assert {settings.profile_image(p) for p in settings.profiles} == {
        "registry.example.org/notebooks/lab:2026.11"
    }


def test_defaults_take_the_token_and_names_from_z2jh(helm):
    docs = render(helm, *REQUIRED, "--set", "serviceMonitor.enabled=true")
    env = container_env(docs)
    assert secret_ref(env, "JUPYTERHUB_API_TOKEN") == {
        "name": "hub",
        "key": "hub.services.subsidy.apiToken",
    }
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://hub:8081/hub/api"
    assert env["SUBSIDYHUB_REQUIRE_POSTGRESQL"]["value"] == "1"
    [endpoint] = by_kind(docs)["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"] == {
        "name": "hub",
        "key": "hub.services.subsidy-metrics.apiToken",
    }
    # The chart's own Secret holds the database URL only.
    assert set(by_kind(docs)["Secret"]["data"]) == {"database-url"}


def test_z2jh_fullname_prefixes_the_hub_names(helm):
    docs = render(
        helm, *REQUIRED, "--set", "jupyterhub.fullname=jh", "--set", "serviceMonitor.enabled=true"
    )
    env = container_env(docs)
    assert secret_ref(env, "JUPYTERHUB_API_TOKEN")["name"] == "jh-hub"
    assert env["JUPYTERHUB_API_URL"]["value"] == "http://jh-hub:8081/hub/api"
    [endpoint] = by_kind(docs)["ServiceMonitor"]["spec"]["endpoints"]
    assert endpoint["authorization"]["credentials"]["name"] == "jh-hub"


def test_config_map_is_mounted_where_the_hub_mounts_it(helm):
    docs = render(helm, *REQUIRED)
    config_map = by_kind(docs)["ConfigMap/subsidyhub"]
    assert set(config_map["data"]) == {"subsidyhub.yaml"}  # no catalog: the packaged one
    assert "image_catalog" not in (yaml.safe_load(config_map["data"]["subsidyhub.yaml"]) or {})
    pod = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == "subsidyhub"
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == "/usr/local/etc/subsidyhub"
    assert container_env(docs)["SUBSIDYHUB_CONFIG"]["value"] == (
        "/usr/local/etc/subsidyhub/subsidyhub.yaml"
    )
    # No disk of the pod holds data: the ledger is in PostgreSQL.
    assert all("emptyDir" not in v or v["name"] == "tmp" for v in pod["volumes"])
    assert "SUBSIDYHUB_DATA_DIR" not in container_env(docs)


def test_pods_carry_the_hub_access_label_and_the_stable_component(helm):
    docs = render(helm, *REQUIRED, "--set", "nameOverride=credits")
    labels = by_kind(docs)["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert labels["hub.jupyter.org/network-access-hub"] == "true"
    assert labels["app.kubernetes.io/component"] == "subsidy-service"
    assert labels["app.kubernetes.io/name"] == "credits"


@pytest.mark.parametrize(
    ("args", "pdb"),
    [
        ([], True),
        (["--set", "replicaCount=1"], False),
        (["--set", "podDisruptionBudget.enabled=false"], False),
        (["--set", "replicaCount=4", "--set", "podDisruptionBudget.minAvailable=3"], True),
    ],
    ids=["two-replicas", "one-replica", "disabled", "four-replicas"],
)
def test_disruption_budget_only_with_spare_replicas(helm, args, pdb):
    assert ("PodDisruptionBudget" in by_kind(render(helm, *REQUIRED, *args))) is pdb


def test_dashboard_config_map_is_the_shipped_dashboard(helm):
    assert "ConfigMap/subsidyhub-dashboard" not in by_kind(render(helm, *REQUIRED))
    docs = by_kind(render(helm, "-f", str(ALL_OPTIONS)))
    dashboard = docs["ConfigMap/gpu-credits-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "SubsidyHub"}
    shipped = json.loads((CHART / "dashboards" / "subsidyhub.json").read_text())
    assert json.loads(dashboard["data"]["subsidyhub.json"]) == shipped


def test_node_capacity_grants_reading_nodes_and_nothing_else(helm):
    """Without nodeCapacity the pods get no API token; with it, a ClusterRole to get and list
    nodes, a token mounted for it, and egress to the API server's ports."""
    plain = render(helm, *REQUIRED)
    assert not {"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} & {d["kind"] for d in plain}
    assert (
        by_kind(plain)["Deployment"]["spec"]["template"]["spec"]["automountServiceAccountToken"]
        is False
    )
    docs = by_kind(render(helm, *REQUIRED, "--set", "nodeCapacity.enabled=true"))
    assert docs["ClusterRole"]["rules"] == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}
    ]
    binding = docs["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == docs["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "subsidyhub", "namespace": "default"}
    ]
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("subsidyhub", True)
    egress = docs["NetworkPolicy"]["spec"]["egress"]
    assert {
        "ports": [{"port": 443, "protocol": "TCP"}, {"port": 6443, "protocol": "TCP"}]
    } in egress


def test_gpu_metrics_egress_only_where_ports_are_given(helm):
    """Idle-GPU reclaim reads Prometheus or dcgm-exporter: egress to exactly those ports and
    peers, and no such rule by default (the policy denies what it does not name)."""
    plain = by_kind(render(helm, *REQUIRED))["NetworkPolicy"]["spec"]["egress"]
    assert not [rule for rule in plain if {"port": 9090, "protocol": "TCP"} in rule["ports"]]
    prometheus = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
    docs = by_kind(
        render(
            helm,
            *REQUIRED,
            "--set",
            "networkPolicy.gpuMetrics.ports={9090}",
            "--set-json",
            f"networkPolicy.gpuMetrics.to=[{json.dumps(prometheus)}]",
        )
    )
    egress = docs["NetworkPolicy"]["spec"]["egress"]
    assert {"ports": [{"port": 9090, "protocol": "TCP"}], "to": [prometheus]} in egress


def test_existing_secret_creates_none(helm):
    docs = render(helm, "--set", "secret.existingSecret=mine")
    assert "Secret" not in by_kind(docs)
    env = container_env(docs)
    refs = {
        name: e["valueFrom"]["secretKeyRef"]["name"] for name, e in env.items() if "valueFrom" in e
    }
    assert refs == {"SUBSIDYHUB_DATABASE_URL": "mine", "JUPYTERHUB_API_TOKEN": "hub"}
    # Its URL cannot be checked at render: the service checks it at start.
    assert env["SUBSIDYHUB_REQUIRE_POSTGRESQL"]["value"] == "1"


@pytest.mark.parametrize("prefix", ["/services/subsidy/", "/services/credits/"])
def test_probes_call_the_service_health_routes(helm, prefix):
    """Each probe's path is a route of the real service app, under the configured prefix."""
    service = prefix.split("/")[2]
    docs = render(
        helm,
        *REQUIRED,
        "--set",
        f"service.prefix={prefix}",
        "--set",
        f"jupyterhub.hubTokenSecret.key=hub.services.{service}.apiToken",
    )
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
        (["--set", "jupyterhub.apiUrl=hub:8081"], "/jupyterhub/apiUrl"),
        # helm reports this one at a random path; the property's name is in the message.
        (
            ["--set-string", "podLabels.app\\.kubernetes\\.io/name=other"],
            "invalid propertyName 'app.kubernetes.io/name'",
        ),
        (["--set-json", "networkPolicy.metricsFrom=[]"], "/networkPolicy/metricsFrom"),
        ([], "secret.databaseUrl is required"),
        (["--set", "secret.databaseUrl=sqlite:///x"], "must be a PostgreSQL URL"),
        (["--set", "secret.databaseUrl=sqlite:///x"], "the ledger is the money record"),
        (
            [*REQUIRED, "--set", "podDisruptionBudget.minAvailable=2"],
            "podDisruptionBudget.minAvailable (2) must be less than replicaCount (2)",
        ),
        (
            [*REQUIRED, "--set", "service.prefix=/services/credits/"],
            "set it to hub.services.credits.apiToken",
        ),
        (
            [
                *REQUIRED,
                "--set",
                "catalog.registry=r.example.org",
                "--set",
                "config.image_catalog=/c.yaml",
            ],
            "set catalog or config.image_catalog, not both",
        ),
    ],
)
def test_bad_values_fail_with_the_message(helm, args, message):
    assert message in render_fails(helm, *args)


def test_database_password_is_not_in_the_error(helm):
    error = render_fails(helm, "--set", "secret.databaseUrl=mysql://u:pa55word@db/ledger")
    assert "not mysql:…" in error
    assert "pa55word" not in error


def _deprecated(schema: dict, path: str = "") -> list[str]:
    """Dotted paths of the schema's leaf values marked deprecated (removed, kept for the message)."""
    found = []
    for name, sub in schema.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        if sub.get("deprecated") and "properties" not in sub:
            found.append(here)
        found.extend(_deprecated(sub, here))
    return found


def test_every_removed_value_is_in_the_moved_table():
    assert sorted(_deprecated(SCHEMA)) == sorted(MOVED)


@pytest.mark.parametrize("old", sorted(MOVED))
@pytest.mark.parametrize(
    "extra",
    [REQUIRED, ["--set", "secret.existingSecret=mine"]],
    ids=["own-secret", "existing-secret"],
)
def test_removed_values_fail_saying_where_they_moved(helm, old, extra):
    error = render_fails(helm, *extra, "--set", f"{old}=x")
    assert f"{old} was removed in chart 0.2.0" in error
    assert MOVED[old] in error


def _described(schema: dict, path: str = "") -> list[str]:
    """Paths of schema nodes with properties lacking a description or additionalProperties: false."""
    problems = []
    if "description" not in schema:
        problems.append(f"{path or '/'}: no description")
    if schema.get("deprecated") and not schema["description"].startswith("Removed in chart"):
        problems.append(f"{path}: deprecated but not described as removed")
    if "properties" in schema:
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path or '/'}: additionalProperties is not false")
        for name, sub in schema["properties"].items():
            problems.extend(_described(sub, f"{path}/{name}"))
    return problems


def _current(properties: dict[str, Any]) -> set[str]:
    return {name for name, sub in properties.items() if not sub.get("deprecated")}


def test_schema_is_strict_and_described():
    assert _described(SCHEMA) == []
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) == _current(SCHEMA["properties"])


def test_all_options_file_sets_every_option():
    options = yaml.safe_load(ALL_OPTIONS.read_text())

    def missing(node: dict, value: object, path: str) -> list[str]:
        if "properties" not in node:
            return []
        assert isinstance(value, dict), path
        out = []
        for name in sorted(_current(node["properties"])):
            if name not in value:
                out.append(f"{path}.{name}")
            else:
                out.extend(missing(node["properties"][name], value[name], f"{path}.{name}"))
        return out

    assert missing(SCHEMA, options, "") == []
