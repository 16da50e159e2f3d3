#!/usr/bin/env python3
"""Writes the metric table the agent's names are checked against
(Tests/Fixtures/semconv-metrics.tsv) from a checkout of
open-telemetry/semantic-conventions at the tag matching the Swift package
swift-otel-semantic-conventions in Package.swift (1.44.0 → v1.44.0):

    git -C semantic-conventions checkout v1.44.0
    Scripts/semconv/extract-metrics.py semantic-conventions > Tests/Fixtures/semconv-metrics.tsv

One line a metric of the namespaces the agent samples (system, process, container, hw):
name, instrument, unit, its attributes (comma-separated, ref_groups resolved)."""
import pathlib
import sys

import yaml

root = pathlib.Path(sys.argv[1]) / "model"
documents = [yaml.safe_load(path.read_text()) for path in sorted(root.rglob("*.yaml"))]
groups = {}
for document in documents:
    for group in (document or {}).get("attribute_groups", []) + (document or {}).get("groups", []):
        groups[group["id"]] = group


def attributes(entries):
    names = []
    for entry in entries or []:
        if "ref_group" in entry:
            names += attributes(groups[entry["ref_group"]].get("attributes"))
        elif "ref" in entry or "id" in entry:
            names.append(entry.get("ref") or entry.get("id"))
    return names


rows = {}
for document in documents:
    document = document or {}
    metrics = document.get("metrics", []) + [group for group in document.get("groups", []) if group.get("type") == "metric"]
    for metric in metrics:
        name = metric.get("name") or metric.get("metric_name")
        if not name or metric.get("deprecated") or name.split(".")[0] not in {"system", "process", "container", "hw"}:
            continue
        rows[name] = (metric["instrument"], metric["unit"], sorted(set(attributes(metric.get("attributes")))))
for name in sorted(rows):
    instrument, unit, names = rows[name]
    print(f"{name}\t{instrument}\t{unit}\t{','.join(names)}")
