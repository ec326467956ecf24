"""Generate prometheusrule.yaml from monitoring/alerts.yaml (the one source of the rules).

Usage: ``python3 monitoring/kubernetes/generate.py`` (rewrites prometheusrule.yaml beside this
file); ``--check`` exits 1 when the file is out of date. Needs PyYAML only. The Prometheus
operator (kube-prometheus-stack) loads the rules of a PrometheusRule whose labels match its
``ruleSelector`` (``release: kube-prometheus-stack`` by default, as servicemonitor.yaml).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "alerts.yaml"
TARGET = HERE / "prometheusrule.yaml"
HEADER = ("# GENERATED from monitoring/alerts.yaml by monitoring/kubernetes/generate.py: do not "
          "edit.\n# The same rules as alerts.yaml (tested there with promtool).\n")


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (PromQL) as literal blocks, as alerts.yaml writes them."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    """The PrometheusRule manifest for the current alerts.yaml."""
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "gpuwatchd", "namespace": "gpuwatchd",
                     "labels": {"app.kubernetes.io/name": "gpuwatchd",
                                "release": "kube-prometheus-stack"}},
        "spec": {"groups": groups},
    }
    return HEADER + yaml.dump(rule, Dumper=_Dumper, sort_keys=False, width=100,
                              allow_unicode=True)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is out of date: run python3 {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
