#!/usr/bin/env python3
"""Turns upstream CRD YAML into the JSON Schemas validate.sh checks our custom resources with.

Usage: python3 extract.py CRD.yaml [CRD.yaml ...] > writes <kind>_<group>_<version>.json here.

The files in this folder were generated from (upstream commits, fetched 2026-11-21):
  kedacore/keda                       8b4f083ca8c8 config/crd/bases/keda.sh_{scaledobjects,scaledjobs,triggerauthentications}.yaml
  rabbitmq/cluster-operator           06cda8e8e1a9 config/crd/bases/rabbitmq.com_rabbitmqclusters.yaml
  prometheus-operator/prometheus-operator 6adcebc5076c example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml

Conversion: the CRD's openAPIV3Schema is a JSON Schema subset; `apiVersion` and `kind` are
pinned with `const`, and every object that lists `properties` without
`x-kubernetes-preserve-unknown-fields` or `additionalProperties` gets
`additionalProperties: false`, like `kubectl apply --validate=strict` (a misspelt field
is an error, not silently pruned). `x-kubernetes-int-or-string` becomes integer|string.
"""
import json
import os
import sys

import yaml


def tighten(node):
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            node.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
        if (
            node.get("type") == "object"
            and "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            tighten(value)
    elif isinstance(node, list):
        for value in node:
            tighten(value)


def main(paths):
    here = os.path.dirname(os.path.abspath(__file__))
    for path in paths:
        with open(path) as f:
            crd = yaml.safe_load(f)
        group = crd["spec"]["group"]
        kind = crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served", True):
                continue
            schema = version["schema"]["openAPIV3Schema"]
            tighten(schema)
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"const": f"{group}/{version['name']}"}
            props["kind"] = {"const": kind}
            props["metadata"] = {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string", "minLength": 1}},
            }
            schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
            schema["$schema"] = "http://json-schema.org/draft-07/schema#"
            schema["title"] = f"{kind} {group}/{version['name']} (from the upstream CRD)"
            out = os.path.join(here, f"{kind.lower()}_{group}_{version['name']}.json")
            with open(out, "w") as f:
                json.dump(schema, f, separators=(",", ":"), sort_keys=True)
                f.write("\n")
            print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
