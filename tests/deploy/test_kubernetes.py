"""deploy/kubernetes: the manifests agree with the server they run.

Every manifest is parsed and checked against the server's own flag table and
health services (not against copies of them): the EVALSTREAM_* variables exist,
the ports the server is told to use are the container's, the probes and Services
point at them, the shutdown fits in the termination grace, the selectors match,
the Secrets referenced exist in the example, the NetworkPolicy admits the ports.
`problems` returns what is wrong; `test_each_check_catches` breaks a copy of the
manifests once per check and expects that check's message. With
kubernetes-validate installed (the dev extra) each manifest is also validated
against the Kubernetes schemas it bundles, offline, for `KUBERNETES_VERSION`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from evalstream_server import config as server_config
from evalstream_server.app import SERVICE_NAMES

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
#: The oldest Kubernetes the manifests are validated against (grpc probes are GA
#: since 1.27, PodDisruptionBudget policy/v1 since 1.21, autoscaling/v2 since 1.23).
KUBERNETES_VERSION = "1.33.0"
#: Manifests deliberately left out of kustomization.yaml, and why.
NOT_APPLIED = {
    "secrets.example.yaml": "placeholder values",
    "migrate-job.yaml": "run before an upgrade",
}
#: Health services the server registers ("" is the whole server).
HEALTH_SERVICES = {"", *SERVICE_NAMES}
#: Stand-ins for the values the manifests take from Secrets, to load a Config.
SECRET_STAND_INS = {"EVALSTREAM_STORE": "postgresql://u:p@db:5432/evalstream"}

Manifests = dict[str, list[dict[str, Any]]]


def load_manifests(directory: Path = KUBERNETES) -> Manifests:
    """Every YAML document of every file, by file name."""
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
        for path in sorted(directory.glob("*.yaml"))
    }


def by_kind(manifests: Manifests, kind: str) -> list[dict[str, Any]]:
    return [doc for docs in manifests.values() for doc in docs if doc.get("kind") == kind]


def _one(manifests: Manifests, kind: str, name: str | None = None) -> dict[str, Any]:
    docs = [d for d in by_kind(manifests, kind) if name is None or d["metadata"]["name"] == name]
    if len(docs) != 1:
        raise AssertionError(f"expected one {kind} {name or ''}, found {len(docs)}")
    return docs[0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    """The container's variables, values from Secrets replaced by stand-ins."""
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            env[item["name"]] = SECRET_STAND_INS.get(item["name"], "from-a-secret")
    return env


def _server_config(container: dict[str, Any]) -> server_config.Config:
    """The Config the server would load from the container's command and variables."""
    argv = [*container["command"][1:], *container.get("args", [])]
    return server_config.load(argv, _env(container))


def _known_flags() -> set[str]:
    return set(server_config.parser()._option_string_actions)


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_specs(manifests: Manifests) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for kind in ("Deployment", "Job"):
        for doc in by_kind(manifests, kind):
            specs.append((f"{kind} {doc['metadata']['name']}", doc["spec"]["template"]["spec"]))
    return specs


def problems(manifests: Manifests) -> list[str]:  # noqa: C901, PLR0912, PLR0915
    """What is wrong with the manifests, one message each; empty when they agree."""
    found: list[str] = []
    kustomization = manifests.get("kustomization.yaml", [{}])[0]
    listed = set(kustomization.get("resources", []))
    files = set(manifests) - {"kustomization.yaml"}
    for name in sorted(files - listed - set(NOT_APPLIED)):
        found.append(f"kustomization: {name} is not listed in resources")
    for name in sorted(listed - files):
        found.append(f"kustomization: {name} is listed but does not exist")
    for name in sorted(listed & set(NOT_APPLIED)):
        found.append(f"kustomization: {name} must not be applied ({NOT_APPLIED[name]})")

    known_vars = {server_config.env_name(flag) for flag, *_ in server_config._FLAGS}
    known_flags = _known_flags()
    # `kustomize edit set image evalstream=...` retags only images named as listed.
    retagged = {image["name"] for image in kustomization.get("images", [])}
    for where, spec in _pod_specs(manifests):
        for container in spec["containers"]:
            if container["image"].rsplit(":", 1)[0] not in retagged:
                found.append(f"{where}: image {container['image']} is not in kustomization images")
            for name in _env(container):
                if name.startswith("EVALSTREAM_") and name not in known_vars:
                    found.append(f"{where}: env {name} is not a server variable")
            for arg in [*container["command"], *container.get("args", [])]:
                if arg.startswith("--") and arg.split("=")[0] not in known_flags:
                    found.append(f"{where}: flag {arg} is not a server flag")
            sc = container.get("securityContext", {})
            if not sc.get("readOnlyRootFilesystem") or sc.get("allowPrivilegeEscalation", True):
                found.append(f"{where}: root filesystem not read-only or escalation allowed")
        if not spec.get("securityContext", {}).get("runAsNonRoot"):
            found.append(f"{where}: runAsNonRoot is not set")

    deployment = _one(manifests, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    spec = deployment["spec"]["template"]["spec"]
    if deployment["spec"]["replicas"] < 2:
        found.append(f"Deployment: replicas {deployment['spec']['replicas']} < 2")
    if not _matches(deployment["spec"]["selector"]["matchLabels"], labels):
        found.append("Deployment: selector does not match the pod labels")
    (container,) = spec["containers"]
    try:
        config = _server_config(container)
    except SystemExit:
        found.append("Deployment: the server refuses its command and variables")
        return found
    if config.exposure_problems():
        found.append(f"Deployment: the server would refuse to start: {config.exposure_problems()}")
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    wanted = {"grpc": config.port, "http": config.http_port, "metrics": config.metrics_port}
    if ports != wanted:
        found.append(f"Deployment: container ports {ports} are not the server's {wanted}")
    if config.host != "0.0.0.0" or config.metrics_host != "0.0.0.0":
        found.append("Deployment: the server listens on a host the pod network cannot reach")

    for probe_name in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(probe_name)
        if probe is None or "grpc" not in probe:
            found.append(f"Deployment: {probe_name} is not a grpc probe")
            continue
        if probe["grpc"]["port"] != config.port:
            found.append(f"Deployment: {probe_name} port {probe['grpc']['port']} is not gRPC's")
        if probe["grpc"].get("service", "") not in HEALTH_SERVICES:
            found.append(
                f"Deployment: {probe_name} service {probe['grpc']['service']!r} is not one "
                f"of the health services {sorted(HEALTH_SERVICES)}"
            )

    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    if not pre_stop or pre_stop[0] != "sleep":
        found.append("Deployment: no preStop sleep")
    else:
        termination = spec.get("terminationGracePeriodSeconds", 30)
        if not termination > float(pre_stop[1]) + config.grace_seconds:
            found.append(
                f"Deployment: terminationGracePeriodSeconds {termination} is not more than "
                f"preStop {pre_stop[1]} s + --grace-seconds {config.grace_seconds}"
            )
    resources = container.get("resources", {})
    for part in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(resources.get(part, {})):
            found.append(f"Deployment: resources.{part} lacks cpu or memory")
    mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
    for path in (str(config.data_dir), "/tmp"):
        if path not in mounts or mounts[path].get("readOnly"):
            found.append(f"Deployment: {path} is not a writable volume")

    secrets: dict[str, set[str]] = {
        doc["metadata"]["name"]: set(doc.get("stringData", {})) | set(doc.get("data", {}))
        for doc in by_kind(manifests, "Secret")
    }
    for where, pod in _pod_specs(manifests):
        refs = [
            (item["valueFrom"]["secretKeyRef"]["name"], item["valueFrom"]["secretKeyRef"]["key"])
            for c in pod["containers"]
            for item in c.get("env", [])
            if "secretKeyRef" in item.get("valueFrom", {})
        ]
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                name = volume["secret"]["secretName"]
                refs.extend((name, key) for key in secrets.get(name, {""}))
        for name, key in refs:
            if key not in secrets.get(name, set()):
                found.append(f"{where}: secret {name} key {key!r} is not in secrets.example.yaml")
    if config.auth_tokens_file is not None:
        directory, filename = str(config.auth_tokens_file.parent), config.auth_tokens_file.name
        volume = next(
            (
                v
                for v in spec.get("volumes", [])
                if mounts.get(directory, {}).get("name") == v["name"]
            ),
            None,
        )
        if volume is None or filename not in secrets.get(volume["secret"]["secretName"], set()):
            found.append(f"Deployment: the tokens file {config.auth_tokens_file} is not mounted")

    container_ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for service in by_kind(manifests, "Service"):
        name = service["metadata"]["name"]
        if not _matches(service["spec"]["selector"], labels):
            found.append(f"Service {name}: selector does not match the Deployment's pods")
        for port in service["spec"]["ports"]:
            if port["targetPort"] not in container_ports:
                found.append(
                    f"Service {name}: targetPort {port['targetPort']} is not a container port"
                )
    headless = _one(manifests, "Service", "evalstream-headless")
    if headless["spec"].get("clusterIP") != "None":
        found.append("Service evalstream-headless: clusterIP is not None")
    if [p["port"] for p in headless["spec"]["ports"]] != [config.port]:
        found.append("Service evalstream-headless: does not serve the gRPC port")

    pdb = _one(manifests, "PodDisruptionBudget")
    if not _matches(pdb["spec"]["selector"]["matchLabels"], labels):
        found.append("PodDisruptionBudget: selector does not match the Deployment's pods")
    hpa = _one(manifests, "HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    if (target["kind"], target["name"]) != ("Deployment", deployment["metadata"]["name"]):
        found.append(f"HorizontalPodAutoscaler: targets {target['kind']} {target['name']}")
    if hpa["spec"]["minReplicas"] < 2:
        found.append("HorizontalPodAutoscaler: minReplicas < 2")

    policy = _one(manifests, "NetworkPolicy")
    if not _matches(policy["spec"]["podSelector"]["matchLabels"], labels):
        found.append("NetworkPolicy: podSelector does not match the Deployment's pods")
    admitted = {p["port"] for rule in policy["spec"].get("ingress", []) for p in rule["ports"]}
    for name, port in wanted.items():
        if port not in admitted:
            found.append(f"NetworkPolicy: ingress does not admit {name} port {port}")
    egress = {p["port"] for rule in policy["spec"].get("egress", []) for p in rule["ports"]}
    store_url = _store_example(manifests)
    for port, what in ((53, "DNS"), (_port_of(store_url), "PostgreSQL")):
        if port not in egress:
            found.append(f"NetworkPolicy: egress does not allow {what} (port {port})")
    return found


def _store_example(manifests: Manifests) -> str:
    """The database URL of the example Secret (its port is the one egress must allow)."""
    for doc in by_kind(manifests, "Secret"):
        if doc["metadata"]["name"] == "evalstream-store":
            return str(doc["stringData"]["url"])
    return "postgresql://u:p@db:5432/evalstream"


def _port_of(url: str) -> int:
    from urllib.parse import urlsplit

    return urlsplit(url).port or 5432


def test_manifests_parse_and_agree_with_the_server() -> None:
    manifests = load_manifests()
    assert set(manifests) >= {"deployment.yaml", "kustomization.yaml", *NOT_APPLIED}
    assert problems(manifests) == []


def _container(m: Manifests) -> dict[str, Any]:
    return _one(m, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def _set_env(name: str, value: str) -> Callable[[Manifests], None]:
    def mutate(m: Manifests) -> None:
        for item in _container(m)["env"]:
            if item["name"] == name:
                item["value"] = value
                return
        _container(m)["env"].append({"name": name, "value": value})

    return mutate


def _probe(m: Manifests, name: str) -> dict[str, Any]:
    return _container(m)[name]["grpc"]


def _pod(m: Manifests) -> dict[str, Any]:
    return _one(m, "Deployment")["spec"]["template"]["spec"]


#: (what is broken, how, a fragment of the message expected).
BREAKAGES: list[tuple[str, Callable[[Manifests], None], str]] = [
    ("unlisted", lambda m: m.__setitem__("extra.yaml", []), "extra.yaml is not listed"),
    (
        "secret_applied",
        lambda m: m["kustomization.yaml"][0]["resources"].append("secrets.example.yaml"),
        "must not be applied",
    ),
    (
        "image_not_retagged",
        lambda m: _container(m).__setitem__("image", "evalstream-server:latest"),
        "not in kustomization images",
    ),
    ("unknown_variable", _set_env("EVALSTREAM_GRACE_SECOND", "20"), "not a server variable"),
    (
        "unknown_flag",
        lambda m: _container(m).__setitem__("args", ["--drain-seconds", "5"]),
        "flag --drain-seconds is not a server flag",
    ),
    ("one_replica", lambda m: _one(m, "Deployment")["spec"].__setitem__("replicas", 1), "< 2"),
    ("port_moved", _set_env("EVALSTREAM_PORT", "50052"), "container ports"),
    ("http_port_moved", _set_env("EVALSTREAM_HTTP_PORT", "8081"), "container ports"),
    ("loopback", _set_env("EVALSTREAM_HOST", "127.0.0.1"), "cannot reach"),
    ("plaintext_refused", _set_env("EVALSTREAM_INSECURE", "0"), "refuse to start"),
    (
        "probe_port",
        lambda m: _probe(m, "readinessProbe").__setitem__("port", 8080),
        "readinessProbe port 8080",
    ),
    (
        "probe_service",
        lambda m: _probe(m, "livenessProbe").__setitem__("service", "evalstream.Runs"),
        "not one of the health services",
    ),
    ("grace_too_long", _set_env("EVALSTREAM_GRACE_SECONDS", "30"), "terminationGracePeriod"),
    (
        "termination_too_short",
        lambda m: _pod(m).__setitem__("terminationGracePeriodSeconds", 25),
        "terminationGracePeriod",
    ),
    ("no_limits", lambda m: _container(m)["resources"].pop("limits"), "resources.limits"),
    (
        "writable_root",
        lambda m: _container(m)["securityContext"].__setitem__("readOnlyRootFilesystem", False),
        "not read-only",
    ),
    ("data_dir_moved", _set_env("EVALSTREAM_DATA_DIR", "/var/lib/evalstream"), "writable volume"),
    (
        "secret_key",
        lambda m: next(i for i in _container(m)["env"] if i["name"] == "EVALSTREAM_STORE")[
            "valueFrom"
        ]["secretKeyRef"].__setitem__("key", "uri"),
        "key 'uri'",
    ),
    (
        "tokens_path",
        _set_env("EVALSTREAM_AUTH_TOKENS_FILE", "/etc/evalstream/tokens.json"),
        "tokens file",
    ),
    (
        "service_selector",
        lambda m: _one(m, "Service", "evalstream")["spec"]["selector"].__setitem__(
            "app.kubernetes.io/name", "evalstreams"
        ),
        "Service evalstream: selector",
    ),
    (
        "target_port",
        lambda m: _one(m, "Service", "evalstream")["spec"]["ports"][0].__setitem__(
            "targetPort", "web"
        ),
        "targetPort web",
    ),
    (
        "headless_not",
        lambda m: _one(m, "Service", "evalstream-headless")["spec"].pop("clusterIP"),
        "clusterIP is not None",
    ),
    (
        "pdb_selector",
        lambda m: _one(m, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"].__setitem__(
            "app.kubernetes.io/component", "migrate"
        ),
        "PodDisruptionBudget: selector",
    ),
    (
        "hpa_target",
        lambda m: _one(m, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"].__setitem__(
            "name", "evalstream-server"
        ),
        "targets Deployment evalstream-server",
    ),
    (
        "policy_port",
        lambda m: _one(m, "NetworkPolicy")["spec"]["ingress"][1]["ports"][0].__setitem__(
            "port", 9090
        ),
        "metrics port 9464",
    ),
    (
        "policy_egress",
        lambda m: _one(m, "NetworkPolicy")["spec"]["egress"].pop(),
        "PostgreSQL (port 5432)",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [pytest.param(mutate, expected, id=name) for name, mutate, expected in BREAKAGES],
)
def test_each_check_catches(mutate: Callable[[Manifests], None], expected: str) -> None:
    broken = copy.deepcopy(load_manifests())
    mutate(broken)
    found = problems(broken)
    assert any(expected in message for message in found), found


def test_manifests_validate_against_the_kubernetes_schemas() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    manifests = load_manifests()
    count = 0
    for name, docs in manifests.items():
        if name == "kustomization.yaml":
            continue  # kustomize's own file, not a Kubernetes resource
        for doc in docs:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            count += 1
    assert count >= 9
    broken = copy.deepcopy(_one(manifests, "Deployment"))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)
    misspelt = copy.deepcopy(_one(manifests, "PodDisruptionBudget"))
    misspelt["spec"]["minAvailible"] = misspelt["spec"].pop("minAvailable")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBERNETES_VERSION, strict=True)
