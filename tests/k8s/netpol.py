"""Does a set of NetworkPolicies admit a flow from one pod to another? A pure evaluator.

The charts' NetworkPolicies are only useful if the flows the platform needs get through and the
others do not, and a cluster is not available in the tests. This module decides a flow the way
the Kubernetes NetworkPolicy API defines it (networking.k8s.io/v1):

* a flow must pass both ends: the source's **egress** and the destination's **ingress**;
* an end with no policy of that type selecting its pod is open; otherwise some rule of some
  selecting policy must match (policies are additive, there is no deny rule);
* a rule matches when one of its peers matches the other pod (no peers: every pod) and one of
  its ports matches the flow (no ports: every port);
* a peer with only ``podSelector`` selects pods in the policy's namespace; with only
  ``namespaceSelector``, every pod of the selected namespaces; with both, the selected pods of
  the selected namespaces. Label selectors have ``matchLabels`` and ``matchExpressions``
  (In, NotIn, Exists, DoesNotExist); an empty selector selects everything;
* a named port (``port: http``) is resolved on the **destination** pod's container ports, on
  both ends (that is the API's rule for egress too), protocol included; ``endPort`` makes a
  numeric port a range;
* ``ipBlock`` peers are **ignored**: Cilium and GKE Dataplane v2 do not apply them to traffic
  between pods, so a flow that only an ipBlock admits must count as denied here.

``policyTypes`` defaults as in the API: Ingress always, Egress when the policy has ``egress``.
Namespaces carry ``kubernetes.io/metadata.name`` as every namespace does since Kubernetes 1.21.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["ingress", "egress"]
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class NamedPort:
    """A container port with a name, which policies may refer to instead of its number."""

    number: int
    protocol: str = "TCP"


@dataclass(frozen=True)
class Pod:
    """What policies see of a pod: where it runs, its labels, and its named container ports."""

    name: str
    namespace: str
    labels: Mapping[str, str]
    ports: Mapping[str, NamedPort] = field(default_factory=dict)

    @classmethod
    def from_template(cls, name: str, namespace: str, template: Mapping[str, Any]) -> Pod:
        """A pod from a pod manifest or a Deployment's ``spec.template`` (metadata + spec)."""
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        spec = template.get("spec") or {}
        ports = {
            port["name"]: NamedPort(int(port["containerPort"]), port.get("protocol", "TCP"))
            for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
            for port in container.get("ports") or []
            if port.get("name")
        }
        return cls(name=name, namespace=namespace, labels=labels, ports=ports)


@dataclass(frozen=True)
class Policy:
    """A NetworkPolicy manifest and the namespace it applies in."""

    name: str
    namespace: str
    spec: Mapping[str, Any]

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], namespace: str | None = None) -> Policy:
        """``metadata.namespace``, else ``namespace`` (helm template leaves it to the install)."""
        metadata = manifest["metadata"]
        where = metadata.get("namespace") or namespace
        if not where:
            raise ValueError(f"NetworkPolicy {metadata['name']} has no namespace; pass one")
        return cls(name=metadata["name"], namespace=where, spec=manifest.get("spec") or {})

    def types(self) -> set[str]:
        """``policyTypes``, defaulted as the API does when it is absent."""
        declared = self.spec.get("policyTypes")
        if declared:
            return set(declared)
        return {"Ingress", "Egress"} if "egress" in self.spec else {"Ingress"}

    def selects(self, pod: Pod) -> bool:
        return pod.namespace == self.namespace and selector_matches(
            self.spec.get("podSelector") or {}, pod.labels
        )


@dataclass(frozen=True)
class Verdict:
    """Whether a flow is admitted, and a readable reason for each end (for assert messages)."""

    admitted: bool
    egress: str
    ingress: str

    def __bool__(self) -> bool:
        return self.admitted

    def __str__(self) -> str:
        return f"{'admitted' if self.admitted else 'denied'} (egress: {self.egress}; ingress: {self.ingress})"


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector against a set of labels; ``{}`` matches everything.

    Raises :class:`ValueError` on an unknown operator, as the API server would reject it.
    """
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != str(value):
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = [str(v) for v in expression.get("values") or []]
        if operator == "In":
            ok = key in labels and labels[key] in values
        elif operator == "NotIn":
            ok = key not in labels or labels[key] not in values
        elif operator == "Exists":
            ok = key in labels
        elif operator == "DoesNotExist":
            ok = key not in labels
        else:
            raise ValueError(f"unknown label selector operator {operator!r}")
        if not ok:
            return False
    return True


def _namespace_labels(namespaces: Mapping[str, Mapping[str, str]], name: str) -> dict[str, str]:
    """A namespace's labels plus the name label Kubernetes gives every namespace."""
    if name not in namespaces:
        raise KeyError(
            f"namespace {name!r} is not among the namespaces given: {sorted(namespaces)}"
        )
    return {**namespaces[name], NAMESPACE_NAME_LABEL: name}


def peer_matches(
    peer: Mapping[str, Any],
    policy_namespace: str,
    other: Pod,
    namespaces: Mapping[str, Mapping[str, str]],
) -> bool:
    """Whether a NetworkPolicyPeer selects ``other`` (ipBlock never does: pod traffic)."""
    if "ipBlock" in peer:
        return False
    pod_selector = peer.get("podSelector")
    namespace_selector = peer.get("namespaceSelector")
    if pod_selector is None and namespace_selector is None:
        raise ValueError(f"a NetworkPolicyPeer needs a selector or ipBlock: {dict(peer)}")
    if namespace_selector is None:
        in_namespace = other.namespace == policy_namespace
    else:
        in_namespace = selector_matches(
            namespace_selector, _namespace_labels(namespaces, other.namespace)
        )
    return in_namespace and selector_matches(pod_selector, other.labels)


def port_matches(rule_port: Mapping[str, Any], port: int, protocol: str, destination: Pod) -> bool:
    """Whether a NetworkPolicyPort admits ``port``/``protocol`` on ``destination``."""
    rule_protocol = rule_port.get("protocol", "TCP")
    if rule_protocol != protocol:
        return False
    wanted = rule_port.get("port")
    if wanted is None:
        return True
    if isinstance(wanted, str):  # IntOrString: a string is always a port name
        named = destination.ports.get(wanted)
        return named is not None and named.number == port and named.protocol == protocol
    low = int(wanted)
    high = int(rule_port.get("endPort", low))
    return low <= port <= high


def _rule_matches(
    rule: Mapping[str, Any],
    side: Side,
    policy: Policy,
    peer_pod: Pod,
    destination: Pod,
    port: int,
    protocol: str,
    namespaces: Mapping[str, Mapping[str, str]],
) -> bool:
    peers = rule.get("from" if side == "ingress" else "to")
    if peers and not any(peer_matches(p, policy.namespace, peer_pod, namespaces) for p in peers):
        return False
    ports = rule.get("ports")
    return not ports or any(port_matches(p, port, protocol, destination) for p in ports)


def _side(
    side: Side,
    policies: Iterable[Policy],
    subject: Pod,
    peer_pod: Pod,
    destination: Pod,
    port: int,
    protocol: str,
    namespaces: Mapping[str, Mapping[str, str]],
) -> tuple[bool, str]:
    kind = "Ingress" if side == "ingress" else "Egress"
    selecting = [p for p in policies if kind in p.types() and p.selects(subject)]
    if not selecting:
        return True, f"no {kind} policy selects {subject.name}"
    for policy in selecting:
        for rule in policy.spec.get(side) or []:
            if _rule_matches(rule, side, policy, peer_pod, destination, port, protocol, namespaces):
                return True, f"allowed by {policy.namespace}/{policy.name}"
    names = ", ".join(f"{p.namespace}/{p.name}" for p in selecting)
    return False, f"no rule of {names} (selecting {subject.name}) matches"


def resolve_port(destination: Pod, port: int | str, protocol: str | None) -> tuple[int, str]:
    """A flow's port as number and protocol; a name is looked up on the destination pod."""
    if isinstance(port, str):
        if port not in destination.ports:
            raise KeyError(
                f"{destination.name} has no port named {port!r}: {dict(destination.ports)}"
            )
        named = destination.ports[port]
        if protocol is not None and protocol != named.protocol:
            raise ValueError(
                f"{destination.name} port {port!r} is {named.protocol}, not {protocol}"
            )
        return named.number, named.protocol
    return port, protocol or "TCP"


def evaluate(
    policies: Iterable[Policy],
    namespaces: Mapping[str, Mapping[str, str]],
    source: Pod,
    destination: Pod,
    port: int | str,
    protocol: str | None = None,
) -> Verdict:
    """Whether ``source`` may open ``port``/``protocol`` on ``destination`` (TCP by default).

    ``namespaces`` maps every namespace the pods run in to its labels. ``port`` may be the
    name of one of the destination's container ports, which fixes the protocol too.
    """
    policies = list(policies)
    number, proto = resolve_port(destination, port, protocol)
    egress_ok, egress = _side(
        "egress", policies, source, destination, destination, number, proto, namespaces
    )
    ingress_ok, ingress = _side(
        "ingress", policies, destination, source, destination, number, proto, namespaces
    )
    return Verdict(admitted=egress_ok and ingress_ok, egress=egress, ingress=ingress)
