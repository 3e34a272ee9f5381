"""The NetworkPolicy evaluator (tests/k8s/netpol.py) against the API's rules, case by case.

test_network_flows.py trusts this evaluator to say which platform flows the charts admit, so
each rule it implements is pinned here by a pair of cases: one admitted, one denied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.k8s.netpol import NamedPort, Pod, Policy, evaluate, selector_matches

NAMESPACES = {
    "app": {},
    "db": {"tier": "data"},
    "kube-system": {},
    "other": {"team": "x"},
}
WEB = Pod("web", "app", {"app": "web", "tier": "front"}, {"http": NamedPort(8080)})
API = Pod("api", "app", {"app": "api"}, {"http": NamedPort(8000), "metrics": NamedPort(9090)})
DB = Pod("db", "db", {"app": "postgres"}, {"pg": NamedPort(5432)})
DNS = Pod("dns", "kube-system", {"k8s-app": "kube-dns"}, {"dns": NamedPort(53, "UDP")})
# Same labels as WEB, other namespace: podSelector alone must not reach it.
FOREIGN_WEB = Pod("foreign-web", "other", {"app": "web"})
FOREIGN_DB = Pod("foreign-db", "other", {"app": "db"})
PODS = {pod.name: pod for pod in (WEB, API, DB, DNS, FOREIGN_WEB, FOREIGN_DB)}


def ingress(*rules: dict[str, Any], select: dict[str, str] | None = None) -> dict[str, Any]:
    """A policy in namespace app selecting ``select`` (default: the api pod) for Ingress."""
    return {
        "metadata": {"name": "in", "namespace": "app"},
        "spec": {
            "podSelector": {"matchLabels": select or {"app": "api"}},
            "policyTypes": ["Ingress"],
            "ingress": list(rules),
        },
    }


def egress(*rules: dict[str, Any], select: dict[str, str] | None = None) -> dict[str, Any]:
    """A policy in namespace app selecting ``select`` (default: the web pod) for Egress."""
    return {
        "metadata": {"name": "out", "namespace": "app"},
        "spec": {
            "podSelector": {"matchLabels": select or {"app": "web"}},
            "policyTypes": ["Egress"],
            "egress": list(rules),
        },
    }


FROM_WEB = {"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
TO_API = {"to": [{"podSelector": {"matchLabels": {"app": "api"}}}]}


@dataclass(frozen=True)
class Case:
    id: str
    policies: list[dict[str, Any]]
    source: str
    destination: str
    port: int | str
    protocol: str | None
    admitted: bool


CASES = [
    Case("no policy: open", [], "web", "api", 8000, None, True),
    Case("podSelector peer", [ingress(FROM_WEB)], "web", "api", 8000, None, True),
    Case("podSelector peer: other pods", [ingress(FROM_WEB)], "dns", "api", 8000, None, False),
    Case(
        "podSelector peer: policy's namespace only",
        [ingress(FROM_WEB)],
        "foreign-web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "namespaceSelector peer: any pod there",
        [ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]})],
        "foreign-db",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "namespaceSelector peer: not the policy's own namespace",
        [ingress({"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]})],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "namespace name label is implicit",
        [
            ingress(
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": "db"}
                            }
                        }
                    ]
                }
            )
        ],
        "db",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "namespace and pod selector in one peer: both must match",
        [
            ingress(
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "x"}},
                            "podSelector": {"matchLabels": {"app": "web"}},
                        }
                    ]
                }
            )
        ],
        "foreign-db",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "namespace and pod selector in one peer: match",
        [
            ingress(
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "x"}},
                            "podSelector": {"matchLabels": {"app": "web"}},
                        }
                    ]
                }
            )
        ],
        "foreign-web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "matchExpressions In",
        [
            ingress(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "In", "values": ["front", "edge"]}
                                ]
                            }
                        }
                    ]
                }
            )
        ],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "matchExpressions NotIn",
        [
            ingress(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [
                                    {"key": "tier", "operator": "NotIn", "values": ["front"]}
                                ]
                            }
                        }
                    ]
                }
            )
        ],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "matchExpressions DoesNotExist",
        [
            ingress(
                {
                    "from": [
                        {
                            "podSelector": {
                                "matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]
                            }
                        }
                    ]
                }
            )
        ],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "named port on the destination",
        [ingress({"ports": [{"port": "http"}]})],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "named port: another port of the destination",
        [ingress({"ports": [{"port": "http"}]})],
        "web",
        "api",
        9090,
        None,
        False,
    ),
    Case(
        "port range with endPort",
        [ingress({"ports": [{"port": 9000, "endPort": 9100}]})],
        "web",
        "api",
        9090,
        None,
        True,
    ),
    Case(
        "port range with endPort: outside",
        [ingress({"ports": [{"port": 9000, "endPort": 9100}]})],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "protocol defaults to TCP",
        [ingress({"ports": [{"port": 8000}]})],
        "web",
        "api",
        8000,
        "UDP",
        False,
    ),
    Case(
        "rule without ports or peers: everything",
        [ingress({})],
        "foreign-db",
        "api",
        1234,
        None,
        True,
    ),
    Case("policy without rules: nothing", [ingress()], "web", "api", 8000, None, False),
    Case(
        "policies add up",
        [ingress(), ingress(FROM_WEB) | {"metadata": {"name": "in-2", "namespace": "app"}}],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "policy of another namespace does not select",
        [ingress() | {"metadata": {"name": "in", "namespace": "other"}}],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case("egress by label", [egress(TO_API)], "web", "api", 8000, None, True),
    Case("egress: other destinations closed", [egress(TO_API)], "web", "db", 5432, None, False),
    Case(
        "egress named port resolves on the destination",
        [egress(TO_API | {"ports": [{"port": "http"}]})],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "egress named port: not the source's port of that name",
        [egress(TO_API | {"ports": [{"port": "http"}]})],
        "web",
        "api",
        8080,
        None,
        False,
    ),
    Case(
        "egress by name resolves protocol too",
        [egress({"ports": [{"port": 53, "protocol": "UDP"}]})],
        "web",
        "dns",
        "dns",
        None,
        True,
    ),
    Case(
        "egress DNS over TCP not admitted by a UDP rule",
        [egress({"ports": [{"port": 53, "protocol": "UDP"}]})],
        "web",
        "dns",
        53,
        "TCP",
        False,
    ),
    Case(
        "ipBlock is ignored for pod traffic",
        [egress({"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]})],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "ipBlock is ignored for pod traffic (ingress)",
        [ingress({"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]})],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "a label peer beside an ipBlock still counts",
        [egress({"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, *TO_API["to"]]})],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "egress admitted, ingress denied",
        [egress(TO_API), ingress()],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "policyTypes absent: Egress when egress rules exist",
        [
            {
                "metadata": {"name": "t", "namespace": "app"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "egress": []},
            }
        ],
        "web",
        "api",
        8000,
        None,
        False,
    ),
    Case(
        "policyTypes absent: Ingress only otherwise",
        [
            {
                "metadata": {"name": "t", "namespace": "app"},
                "spec": {"podSelector": {"matchLabels": {"app": "web"}}},
            }
        ],
        "web",
        "api",
        8000,
        None,
        True,
    ),
    Case(
        "policyTypes [Ingress]: egress rules are not enforced",
        [
            {
                "metadata": {"name": "t", "namespace": "app"},
                "spec": {
                    "podSelector": {"matchLabels": {"app": "web"}},
                    "policyTypes": ["Ingress"],
                    "egress": [],
                },
            }
        ],
        "web",
        "api",
        8000,
        None,
        True,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_flow(case: Case) -> None:
    policies = [Policy.from_manifest(doc) for doc in case.policies]
    verdict = evaluate(
        policies, NAMESPACES, PODS[case.source], PODS[case.destination], case.port, case.protocol
    )
    assert verdict.admitted is case.admitted, str(verdict)


def test_verdict_names_the_side_and_policy_that_denied() -> None:
    verdict = evaluate([Policy.from_manifest(egress(TO_API))], NAMESPACES, WEB, DB, 5432)
    assert not verdict
    assert "app/out" in verdict.egress and "web" in verdict.egress
    assert verdict.ingress == "no Ingress policy selects db"


def test_policy_namespace_comes_from_helm_install() -> None:
    """``helm template`` leaves metadata.namespace out; the install namespace is passed in."""
    manifest = ingress(FROM_WEB)
    del manifest["metadata"]["namespace"]
    assert Policy.from_manifest(manifest, "app").namespace == "app"
    with pytest.raises(ValueError, match="no namespace"):
        Policy.from_manifest(manifest)


def test_pod_from_a_template_takes_labels_and_named_ports() -> None:
    pod = Pod.from_template(
        "hub",
        "jhub",
        {
            "metadata": {"labels": {"component": "hub"}},
            "spec": {
                "containers": [
                    {"ports": [{"name": "http", "containerPort": 8081}, {"containerPort": 9}]},
                    {"ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"}]},
                ]
            },
        },
    )
    assert pod.labels == {"component": "hub"}
    assert pod.ports == {"http": NamedPort(8081), "dns": NamedPort(53, "UDP")}


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ({}, {"a": "1"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        (
            {
                "matchLabels": {"a": "1"},
                "matchExpressions": [{"key": "b", "operator": "DoesNotExist"}],
            },
            {"a": "1", "b": "2"},
            False,
        ),
    ],
)
def test_label_selectors(selector: dict, labels: dict[str, str], expected: bool) -> None:
    assert selector_matches(selector, labels) is expected


def test_mistakes_in_the_inputs_are_errors_not_denials() -> None:
    """A typo in a test's flow table must fail loudly, not pass as a denied flow."""
    with pytest.raises(KeyError, match="no port named 'https'"):
        evaluate([], NAMESPACES, WEB, API, "https")
    with pytest.raises(KeyError, match="namespace 'nowhere'"):
        evaluate(
            [Policy.from_manifest(ingress({"from": [{"namespaceSelector": {}}]}))],
            NAMESPACES,
            Pod("lost", "nowhere", {}),
            API,
            8000,
        )
    with pytest.raises(ValueError, match="unknown label selector operator"):
        selector_matches({"matchExpressions": [{"key": "a", "operator": "Gt"}]}, {})
