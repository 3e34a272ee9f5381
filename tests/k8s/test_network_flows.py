"""Every network flow the platform needs gets through the rendered NetworkPolicies; no other does.

Both charts are rendered for real: z2jh 4.4.0 with helm/jupyterhub-values.yaml (its hub,
proxy and user-server policies, plus the overlay's egress to the subsidy service) and the
subsidyhub chart (its policy). Each pod's labels and named ports are taken from what would run:
the rendered Deployments' pod templates for the hub, the proxy and the service, and the pods
KubeSpawner builds from z2jh's real hub config for user servers (``user_pods``). Pods outside
the charts (DNS, PostgreSQL, Prometheus) are stated below as the usual charts label them.

Flows are decided by tests/k8s/netpol.py, which ignores ipBlock for pod-to-pod traffic as
Cilium and GKE Dataplane v2 do: z2jh's ``privateIPs`` rule must not be what lets a flow in.
The same renders also show that the charts point at each other (tokens, URLs, the ConfigMap)
and that the subsidyhub chart names and selects everything by its fullname.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.k8s.charts import (
    NAMESPACE,
    OVERLAY,
    Doc,
    find,
    of_kind,
    render_subsidyhub,
    render_z2jh,
    secret_data,
)
from tests.k8s.netpol import NamedPort, Pod, Policy, Verdict, evaluate, selector_matches

# Namespaces besides the release's, labelled as Kubernetes does (netpol adds the name label).
NAMESPACES: dict[str, dict[str, str]] = {
    NAMESPACE: {},
    "kube-system": {},
    "db": {},
    "monitoring": {},
    "elsewhere": {},
}
# Pods the charts do not render, labelled as their usual charts do.
OTHER_PODS = [
    Pod(
        "kube-dns",
        "kube-system",
        {"k8s-app": "kube-dns"},
        {"dns": NamedPort(53, "UDP"), "dns-tcp": NamedPort(53, "TCP")},
    ),
    Pod(
        "postgres",
        "db",
        {"app.kubernetes.io/name": "postgresql"},
        {"tcp-postgresql": NamedPort(5432)},
    ),
    # A PostgreSQL that is not the ledger's, for networkPolicy.database.to.
    Pod(
        "other-postgres",
        "elsewhere",
        {"app.kubernetes.io/name": "postgresql"},
        {"tcp-postgresql": NamedPort(5432)},
    ),
    # kube-prometheus-stack's Prometheus.
    Pod(
        "prometheus",
        "monitoring",
        {"app.kubernetes.io/name": "prometheus", "prometheus": "kube-prometheus"},
        {"http-web": NamedPort(9090)},
    ),
    # Some other workload in the release's namespace, without z2jh's labels.
    Pod("stranger", NAMESPACE, {"app": "something-else"}),
    # The hub of another z2jh release in the same namespace.
    Pod(
        "other-release-hub",
        NAMESPACE,
        {"app": "jupyterhub", "component": "hub", "release": "jhub2"},
        {"http": NamedPort(8081)},
    ),
]
MONITORED = ("--set", "serviceMonitor.enabled=true")


@dataclass(frozen=True)
class Setup:
    """One way of installing both charts."""

    id: str
    z2jh: tuple[str, ...] = ()
    subsidyhub: tuple[str, ...] = ()
    overlay: bool = True
    # Whether the user_pods (built with z2jh's default labels) are this setup's user servers.
    user_servers: bool = True


@dataclass
class Cluster:
    """The rendered policies and the pods they govern, by name (user servers: ``user:<slug>``)."""

    policies: list[Policy]
    pods: dict[str, Pod]
    z2jh: list[Doc]
    subsidyhub: list[Doc]

    def named(self, name: str) -> list[Pod]:
        """``user`` stands for every user server; any other name for that one pod."""
        if name == "user":
            users = [pod for key, pod in self.pods.items() if key.startswith("user:")]
            assert users, "no user server pods"
            return users
        return [self.pods[name]]

    def flow(
        self, source: str, destination: str, port: int | str, protocol: str | None = None
    ) -> list[Verdict]:
        return [
            evaluate(self.policies, NAMESPACES, src, dst, port, protocol)
            for src in self.named(source)
            for dst in self.named(destination)
        ]


def _template_of(docs: list[Doc], labels: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """The one Deployment whose pods carry ``labels``: its name and pod template."""
    found = [
        d
        for d in of_kind(docs, "Deployment")
        if selector_matches({"matchLabels": labels}, d["spec"]["template"]["metadata"]["labels"])
    ]
    assert len(found) == 1, f"{len(found)} Deployments with pod labels {labels}"
    return found[0]["metadata"]["name"], found[0]["spec"]["template"]


def build_cluster(z2jh: list[Doc], subsidyhub: list[Doc], users: dict[str, dict] | None) -> Cluster:
    pods = {pod.name: pod for pod in OTHER_PODS}
    for name, labels, docs in [
        ("hub", {"component": "hub"}, z2jh),
        ("proxy", {"component": "proxy"}, z2jh),
        ("subsidyhub", {"app.kubernetes.io/component": "subsidy-service"}, subsidyhub),
    ]:
        _deployment, template = _template_of(docs, labels)
        pods[name] = Pod.from_template(name, NAMESPACE, template)
    for slug, manifest in (users or {}).items():
        namespace = manifest.get("metadata", {}).get("namespace") or NAMESPACE
        pods[f"user:{slug}"] = Pod.from_template(f"user:{slug}", namespace, manifest)
    policies = [
        Policy.from_manifest(doc, NAMESPACE)
        for doc in of_kind([*z2jh, *subsidyhub], "NetworkPolicy")
    ]
    return Cluster(policies=policies, pods=pods, z2jh=z2jh, subsidyhub=subsidyhub)


@pytest.fixture(scope="module")
def cluster(helm, user_pods, tmp_path_factory) -> Iterator[Callable[[Setup], Cluster]]:
    """Setup → Cluster, each chart rendered once per distinct set of values."""
    empty_overlay = tmp_path_factory.mktemp("values") / "no-overlay.yaml"
    empty_overlay.write_text("{}\n")
    z2jh_renders: dict[tuple[Any, ...], list[Doc]] = {}
    subsidyhub_renders: dict[tuple[str, ...], list[Doc]] = {}

    def build(setup: Setup) -> Cluster:
        z2jh_key = (setup.overlay, *setup.z2jh)
        if z2jh_key not in z2jh_renders:
            overlay = OVERLAY if setup.overlay else empty_overlay
            z2jh_renders[z2jh_key] = render_z2jh(helm, *setup.z2jh, overlay=overlay)
        if setup.subsidyhub not in subsidyhub_renders:
            subsidyhub_renders[setup.subsidyhub] = render_subsidyhub(helm, *setup.subsidyhub)
        users = user_pods if setup.user_servers else None
        return build_cluster(z2jh_renders[z2jh_key], subsidyhub_renders[setup.subsidyhub], users)

    yield build


# The platform's flows: (what it is for, source, destination, port, protocol). Ports by name
# are the destination's container port names; 8081 is the hub API port of jupyterhub.apiUrl
# (test_service_reaches_the_hub_api checks that it is the hub pod's).
NEEDED = [
    ("hub → service (API, OAuth)", "hub", "subsidyhub", "http", None),
    ("proxy → service (users' requests)", "proxy", "subsidyhub", "http", None),
    ("user server → service (JupyterLab extension)", "user", "subsidyhub", "http", None),
    ("service → hub API", "subsidyhub", "hub", 8081, None),
    ("service → PostgreSQL", "subsidyhub", "postgres", 5432, None),
    ("service → DNS over UDP", "subsidyhub", "kube-dns", "dns", None),
    ("service → DNS over TCP", "subsidyhub", "kube-dns", "dns-tcp", None),
    ("Prometheus → service /metrics", "prometheus", "subsidyhub", "http", None),
]
# Installs in which all of NEEDED must hold (all with the ServiceMonitor on).
WORKING = [
    Setup("defaults", subsidyhub=MONITORED),
    Setup("nameOverride", subsidyhub=(*MONITORED, "--set", "nameOverride=credits")),
    Setup("fullnameOverride", subsidyhub=(*MONITORED, "--set", "fullnameOverride=gpu-credits")),
    Setup("release-pinned", subsidyhub=(*MONITORED, "--set", "jupyterhub.release=jhub")),
    Setup(
        "database-narrowed",
        subsidyhub=(
            *MONITORED,
            "--set-json",
            'networkPolicy.database.to=[{"namespaceSelector":{"matchLabels":'
            '{"kubernetes.io/metadata.name":"db"}}}]',
        ),
    ),
    Setup(
        "z2jh-fullnameOverride",
        z2jh=("--set", "fullnameOverride=jh"),
        subsidyhub=(*MONITORED, "--set", "jupyterhub.fullname=jh"),
        user_servers=False,
    ),
    Setup(
        "z2jh-nameOverride",
        z2jh=("--set", "nameOverride=jh"),
        subsidyhub=(*MONITORED, "--set", "jupyterhub.name=jh"),
        user_servers=False,  # z2jh's hub would label them app: jh; user_pods are built for defaults
    ),
]
WITHOUT_OVERLAY = Setup("no-overlay", subsidyhub=MONITORED, overlay=False)
NO_HUB_LABEL = Setup("no-podLabels", subsidyhub=(*MONITORED, "--set", "podLabels=null"))
# Flows that must stay denied: (why, setup, source, destination, port, protocol).
DENIED = [
    ("user servers hold no database credentials", WORKING[0], "user", "postgres", 5432, None),
    (
        "the service never calls user servers",
        WORKING[0],
        "subsidyhub",
        "user",
        "notebook-port",
        None,
    ),
    ("the service never calls the proxy", WORKING[0], "subsidyhub", "proxy", "api", None),
    (
        "the service never calls Prometheus",
        WORKING[0],
        "subsidyhub",
        "prometheus",
        "http-web",
        None,
    ),
    ("other pods of the namespace", WORKING[0], "stranger", "subsidyhub", "http", None),
    (
        "no ServiceMonitor, no scraping",
        Setup("unmonitored"),
        "prometheus",
        "subsidyhub",
        "http",
        None,
    ),
    ("other databases when narrowed", WORKING[4], "subsidyhub", "other-postgres", 5432, None),
    (
        "another z2jh release when pinned",
        WORKING[3],
        "other-release-hub",
        "subsidyhub",
        "http",
        None,
    ),
    ("z2jh alone: hub egress is only ipBlock", WITHOUT_OVERLAY, "hub", "subsidyhub", "http", None),
    (
        "z2jh alone: proxy egress is only ipBlock",
        WITHOUT_OVERLAY,
        "proxy",
        "subsidyhub",
        "http",
        None,
    ),
    (
        "z2jh alone: user egress excludes private IPs",
        WITHOUT_OVERLAY,
        "user",
        "subsidyhub",
        "http",
        None,
    ),
    ("the hub admits only labelled pods", NO_HUB_LABEL, "subsidyhub", "hub", 8081, None),
    (
        "z2jh's app label must be jupyterhub.name",
        Setup(
            "z2jh-nameOverride-unset",
            z2jh=("--set", "nameOverride=jh"),
            subsidyhub=MONITORED,
            user_servers=False,
        ),
        "hub",
        "subsidyhub",
        "http",
        None,
    ),
]


# Every needed flow in every working install; user servers only where user_pods apply.
NEEDED_IN_SETUPS = [
    pytest.param(setup, *flow, id=f"{setup.id}: {flow[0]}")
    for setup in WORKING
    for flow in NEEDED
    if setup.user_servers or "user" not in (flow[1], flow[2])
]


@pytest.mark.parametrize(
    ("setup", "purpose", "source", "destination", "port", "protocol"), NEEDED_IN_SETUPS
)
def test_needed_flow_is_admitted(cluster, setup, purpose, source, destination, port, protocol):
    for verdict in cluster(setup).flow(source, destination, port, protocol):
        assert verdict.admitted, f"{purpose}: {verdict}"


def test_any_z2jh_release_is_admitted_unless_pinned(cluster):
    """The pair of the "another z2jh release when pinned" denial: unpinned, it gets in."""
    [verdict] = cluster(WORKING[0]).flow("other-release-hub", "subsidyhub", "http")
    assert verdict.admitted, str(verdict)


@pytest.mark.parametrize(
    ("why", "setup", "source", "destination", "port", "protocol"),
    DENIED,
    ids=[d[0] for d in DENIED],
)
def test_other_flow_is_denied(cluster, why, setup, source, destination, port, protocol):
    for verdict in cluster(setup).flow(source, destination, port, protocol):
        assert not verdict.admitted, f"{why}: {verdict}"


def test_only_the_overlay_lets_z2jh_pods_out_to_the_service(cluster):
    """Without the overlay the denial is on z2jh's egress side, not on the service's policy."""
    [verdict] = cluster(WITHOUT_OVERLAY).flow("hub", "subsidyhub", "http")
    assert "allowed by" in verdict.ingress
    assert "jhub/hub" in verdict.egress and "matches" in verdict.egress


# --- how the charts point at each other --------------------------------------------------------

HUB_NAMES = [
    Setup("defaults", subsidyhub=MONITORED),
    Setup(
        "z2jh-fullnameOverride",
        z2jh=("--set", "fullnameOverride=jh"),
        subsidyhub=(*MONITORED, "--set", "jupyterhub.fullname=jh"),
    ),
]


def _env(docs: list[Doc], labels: dict[str, str], container: str | None = None) -> dict[str, dict]:
    _name, template = _template_of(docs, labels)
    containers = template["spec"]["containers"]
    [found] = [c for c in containers if container is None or c["name"] == container]
    return {e["name"]: e for e in found.get("env") or []}


@pytest.mark.parametrize("setup", HUB_NAMES, ids=[s.id for s in HUB_NAMES])
def test_service_tokens_are_the_ones_z2jh_generates(cluster, setup):
    built = cluster(setup)
    refs = [
        _env(built.subsidyhub, {"app.kubernetes.io/component": "subsidy-service"})[
            "JUPYTERHUB_API_TOKEN"
        ]["valueFrom"]["secretKeyRef"]
    ]
    [monitor] = of_kind(built.subsidyhub, "ServiceMonitor")
    refs.append(monitor["spec"]["endpoints"][0]["authorization"]["credentials"])
    assert [r["key"] for r in refs] == [
        "hub.services.subsidy.apiToken",
        "hub.services.subsidy-metrics.apiToken",
    ]
    for ref in refs:
        data = secret_data(find(built.z2jh, "Secret", ref["name"]))
        assert len(data[ref["key"]]) >= 32, (
            f"z2jh's Secret {ref['name']} lacks a token {ref['key']}"
        )


@pytest.mark.parametrize("setup", HUB_NAMES, ids=[s.id for s in HUB_NAMES])
def test_service_reaches_the_hub_api(cluster, setup):
    """jupyterhub.apiUrl's host is z2jh's hub Service, whose port leads to the hub pod's 8081."""
    built = cluster(setup)
    env = _env(built.subsidyhub, {"app.kubernetes.io/component": "subsidy-service"})
    url = urlsplit(env["JUPYTERHUB_API_URL"]["value"])
    service = find(built.z2jh, "Service", url.hostname or "")
    assert selector_matches({"matchLabels": service["spec"]["selector"]}, built.pods["hub"].labels)
    [port] = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    target = port["targetPort"]
    number = built.pods["hub"].ports[target].number if isinstance(target, str) else target
    assert number == 8081  # the port NEEDED opens
    assert url.path == "/hub/api"


def test_hub_registers_the_service_at_its_service(cluster, default_hub):
    """z2jh's real hub config, with the overlay, points the hub at the subsidyhub Service."""
    built = cluster(WORKING[0])
    overlay = yaml.safe_load(OVERLAY.read_text())
    services = overlay["hub"]["services"]
    assert all("apiToken" not in s and "api_token" not in s for s in services.values())
    [subsidy] = [s for s in default_hub["services"] if s["name"] == "subsidy"]
    url = urlsplit(subsidy["url"])
    service = find(built.subsidyhub, "Service", url.hostname or "")
    [port] = [p for p in service["spec"]["ports"] if p["port"] == url.port]
    assert port["targetPort"] in built.pods["subsidyhub"].ports
    env = _env(built.subsidyhub, {"app.kubernetes.io/component": "subsidy-service"})
    assert env["JUPYTERHUB_SERVICE_PREFIX"]["value"] == "/services/subsidy/"


def test_hub_mounts_the_service_config_map_at_the_same_path(cluster):
    built = cluster(WORKING[0])

    def config_mount(docs: list[Doc], labels: dict[str, str]) -> tuple[str, str]:
        _name, template = _template_of(docs, labels)
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        names = {name: v["configMap"]["name"] for name, v in volumes.items() if "configMap" in v}
        mounts = [
            (names[m["name"]], m["mountPath"])
            for c in template["spec"]["containers"]
            for m in c.get("volumeMounts") or []
            if m["name"] in names
        ]
        [config_map] = [
            c for c in of_kind(built.subsidyhub, "ConfigMap") if "subsidyhub.yaml" in c["data"]
        ]
        [mount] = [m for m in mounts if m[0] == config_map["metadata"]["name"]]
        return mount

    service_mount = config_mount(
        built.subsidyhub, {"app.kubernetes.io/component": "subsidy-service"}
    )
    assert config_mount(built.z2jh, {"component": "hub"}) == service_mount
    hub_env = _env(built.z2jh, {"component": "hub"}, "hub")
    service_env = _env(built.subsidyhub, {"app.kubernetes.io/component": "subsidy-service"})
    assert hub_env["SUBSIDYHUB_CONFIG"]["value"] == service_env["SUBSIDYHUB_CONFIG"]["value"]
    assert Path(service_env["SUBSIDYHUB_CONFIG"]["value"]).parent == Path(service_mount[1])


# --- nameOverride / fullnameOverride -----------------------------------------------------------

EVERYTHING = (*MONITORED, "--set", "grafanaDashboard.enabled=true")


@pytest.mark.parametrize(
    ("overrides", "fullname", "name"),
    [
        ((), "subsidyhub", "subsidyhub"),
        (("--set", "nameOverride=credits"), "subsidyhub-credits", "credits"),
        (("--set", "fullnameOverride=gpu-credits"), "gpu-credits", "subsidyhub"),
        (
            ("--set", "fullnameOverride=gpu-credits", "--set", "nameOverride=credits"),
            "gpu-credits",
            "credits",
        ),
    ],
    ids=["defaults", "nameOverride", "fullnameOverride", "both"],
)
def test_every_name_and_reference_follows_the_overrides(helm, overrides, fullname, name):
    docs = render_subsidyhub(helm, *EVERYTHING, *overrides)
    by_kind_name = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert by_kind_name == {
        ("Deployment", fullname),
        ("Service", fullname),
        ("ConfigMap", fullname),
        ("ConfigMap", f"{fullname}-dashboard"),
        ("Secret", f"{fullname}-secret"),
        ("PodDisruptionBudget", fullname),
        ("NetworkPolicy", fullname),
        ("ServiceMonitor", fullname),
    }
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == name, doc["kind"]
    deployment = find(docs, "Deployment", fullname)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = deployment["spec"]["template"]["spec"]

    def selects_pods(selector: dict[str, Any]) -> bool:
        return selector_matches(selector, pod_labels)

    assert selects_pods(deployment["spec"]["selector"])
    assert selects_pods({"matchLabels": find(docs, "Service", fullname)["spec"]["selector"]})
    assert selects_pods(find(docs, "PodDisruptionBudget", fullname)["spec"]["selector"])
    assert selects_pods(find(docs, "NetworkPolicy", fullname)["spec"]["podSelector"])
    [term] = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert selects_pods(term["podAffinityTerm"]["labelSelector"])
    service = find(docs, "Service", fullname)
    assert selector_matches(
        find(docs, "ServiceMonitor", fullname)["spec"]["selector"], service["metadata"]["labels"]
    )
    [volume] = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == fullname
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert (
        env["SUBSIDYHUB_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == f"{fullname}-secret"
    )
    # What the overlay relies on does not move: the component label and the named port.
    assert pod_labels["app.kubernetes.io/component"] == "subsidy-service"
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert {p["name"] for p in pod["containers"][0]["ports"]} == {"http"}
