"""monitoring/kubernetes: every manifest validated, the PrometheusRule generated from
monitoring/alerts.yaml, both device-list strategies, the OpenShift SCC, the image build.

Core kinds are validated against the Kubernetes OpenAPI schemas with kubernetes-validate
(PyPI; the dev extra installs it): its strict schemas of Kubernetes 1.30 reject unknown
fields and wrong types. The custom resources (ServiceMonitor, PrometheusRule,
SecurityContextConstraints, Kustomization) have no schema there: a small subset of their
CRD schemas, written below, checks their structure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from gpuwatchd.licence.node import OPERATOR_DRIVER_ROOT

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "monitoring" / "kubernetes"
KUBERNETES_VERSION = "1.30"
MANIFESTS = sorted(K8S.glob("*.yaml"))

sys.path.insert(0, str(K8S))
import generate  # noqa: E402 - monitoring/kubernetes/generate.py, not a package

# Subsets of the CRD schemas (prometheus-operator v0.7x, OpenShift 4.x): required fields and
# the types of the fields these manifests use; "*" is any mapping key.
Schema = dict[str, Any]
_META: Schema = {"type": dict, "required": ["name"],
                 "fields": {"name": str, "namespace": str, "labels": {"type": dict, "*": str}}}
_RULE: Schema = {"type": dict, "required": ["expr"], "fields": {
    "alert": str, "record": str, "expr": str, "for": str,
    "labels": {"type": dict, "*": str}, "annotations": {"type": dict, "*": str}}}
CRDS: dict[tuple[str, str], Schema] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): {"type": dict, "fields": {
        "spec": {"type": dict, "required": ["selector", "endpoints"], "fields": {
            "selector": {"type": dict, "fields": {"matchLabels": {"type": dict, "*": str}}},
            "namespaceSelector": {"type": dict, "fields": {"matchNames": [str]}},
            "endpoints": [{"type": dict, "fields": {
                "port": str, "path": str, "interval": str,
                "relabelings": [{"type": dict, "fields": {
                    "sourceLabels": [str], "targetLabel": str}}]}}]}}}},
    ("monitoring.coreos.com/v1", "PrometheusRule"): {"type": dict, "fields": {
        "spec": {"type": dict, "required": ["groups"], "fields": {
            "groups": [{"type": dict, "required": ["name", "rules"], "fields": {
                "name": str, "interval": str, "rules": [_RULE]}}]}}}},
    ("security.openshift.io/v1", "SecurityContextConstraints"): {"type": dict, "fields": {
        "priority": type(None), "allowPrivilegedContainer": bool,
        "allowPrivilegeEscalation": bool, "allowHostDirVolumePlugin": bool,
        "allowHostIPC": bool, "allowHostNetwork": bool, "allowHostPID": bool,
        "allowHostPorts": bool, "readOnlyRootFilesystem": bool,
        "requiredDropCapabilities": [str], "allowedCapabilities": [str],
        "defaultAddCapabilities": [str],
        "runAsUser": {"type": dict, "required": ["type"], "fields": {"type": str, "uid": int}},
        "fsGroup": {"type": dict, "fields": {"type": str, "ranges": [
            {"type": dict, "fields": {"min": int, "max": int}}]}},
        "supplementalGroups": {"type": dict, "fields": {"type": str}},
        "seLinuxContext": {"type": dict, "fields": {"type": str}},
        "seccompProfiles": [str], "volumes": [str], "users": [str], "groups": [str]},
        "required": ["runAsUser", "seLinuxContext", "volumes"]},
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): {"type": dict, "fields": {
        "resources": [str]}, "required": ["resources"]},
}
SCC_VOLUMES = {"configMap", "emptyDir", "hostPath", "projected", "secret",
               "persistentVolumeClaim", "downwardAPI", "csi", "ephemeral", "*"}


def _check(value: Any, schema: Any, where: str) -> None:
    """Validate ``value`` against a schema of the subset above (AssertionError with a path)."""
    if isinstance(schema, type):
        assert isinstance(value, schema) and not (schema is int and isinstance(value, bool)), \
            f"{where}: {value!r} is not {schema.__name__}"
        return
    if isinstance(schema, list):
        assert isinstance(value, list), f"{where}: not a list"
        for i, item in enumerate(value):
            _check(item, schema[0], f"{where}[{i}]")
        return
    assert isinstance(value, dict), f"{where}: not a mapping"
    for key in schema.get("required", []):
        assert key in value, f"{where}: {key} is required"
    fields, anything = schema.get("fields", {}), schema.get("*")
    for key, item in value.items():
        sub = fields.get(key, anything)
        assert sub is not None, f"{where}: unknown field {key}"
        _check(item, sub, f"{where}.{key}")


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _all() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.name}:{d['kind']}", d) for p in MANIFESTS for d in _docs(p)]


def _daemonset() -> dict[str, Any]:
    return next(d for d in _docs(K8S / "daemonset.yaml") if d["kind"] == "DaemonSet")


@pytest.mark.parametrize(("name", "doc"), _all(), ids=[n for n, _ in _all()])
def test_every_manifest_validates(name: str, doc: dict[str, Any]) -> None:
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in CRDS:
        if key[1] != "Kustomization":
            _check(doc.get("metadata"), _META, f"{name}.metadata")
        rest = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
        _check(rest, CRDS[key], name)
        return
    try:  # a peer the suite needs: missing, the test fails saying what to install
        import kubernetes_validate
    except ImportError:
        pytest.fail("kubernetes-validate is missing: bash scripts/setup.sh --dev installs it")
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_kind_is_covered() -> None:
    core = {"Namespace", "ServiceAccount", "ConfigMap", "DaemonSet", "Service", "ClusterRole",
            "RoleBinding"}
    assert {d["kind"] for _, d in _all()} <= core | {k for _, k in CRDS}


def test_prometheusrule_is_generated_from_alerts_yaml() -> None:
    assert (K8S / "prometheusrule.yaml").read_text() == generate.render(), \
        "run python3 monitoring/kubernetes/generate.py"
    (rule,) = _docs(K8S / "prometheusrule.yaml")
    alerts = yaml.safe_load((ROOT / "monitoring" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"]
    monitor = next(d for d in _docs(K8S / "servicemonitor.yaml") if d["kind"] == "ServiceMonitor")
    assert rule["metadata"]["labels"]["release"] == monitor["metadata"]["labels"]["release"]


def test_daemonset_works_under_both_device_list_strategies() -> None:
    pod = _daemonset()["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"  # envvar strategy
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    devices = mounts["/var/run/nvidia-container-devices/all"]  # volume-mounts strategy
    assert volumes[devices["name"]]["hostPath"]["path"] == "/dev/null"
    driver = mounts[OPERATOR_DRIVER_ROOT]  # the GPU operator's gridd.conf and token
    assert driver["readOnly"] is True
    assert volumes[driver["name"]]["hostPath"]["path"] == OPERATOR_DRIVER_ROOT


def test_openshift_scc_grants_what_the_daemonset_needs() -> None:
    docs = {d["kind"]: d for d in _docs(K8S / "openshift-scc.yaml")}
    scc, binding = docs["SecurityContextConstraints"], docs["RoleBinding"]
    pod = _daemonset()["spec"]["template"]["spec"]
    assert scc["runAsUser"] == {"type": "MustRunAs", "uid": pod["securityContext"]["runAsUser"]}
    kinds = {next(k for k in v if k != "name") for v in pod["volumes"]}
    assert kinds <= set(scc["volumes"]) <= SCC_VOLUMES
    assert scc["allowHostDirVolumePlugin"] == ("hostPath" in kinds)
    assert scc["allowPrivilegedContainer"] is False and scc["requiredDropCapabilities"] == ["ALL"]
    (subject,) = binding["subjects"]
    assert subject["name"] == pod["serviceAccountName"]
    assert docs["ClusterRole"]["rules"][0]["resourceNames"] == [scc["metadata"]["name"]]


def test_kustomization_lists_existing_files() -> None:
    (kustomization,) = _docs(K8S / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file(), resource


def test_image_build_files() -> None:
    text = (ROOT / "packaging" / "Containerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[0].startswith("FROM debian:")
    assert "USER 65534:65534" in lines and "EXPOSE 10045" in lines
    assert 'ENTRYPOINT ["/usr/bin/gpuwatchd"]' in lines  # the .deb's binary
    script = ROOT / "packaging" / "build-image.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert "dist/gpuwatchd_*_all.deb" in script.read_text()  # what build-deb.sh writes
