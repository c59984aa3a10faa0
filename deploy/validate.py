#!/usr/bin/env python3
"""Schema validation of every Kubernetes manifest in deploy/ and keda/ (run by validate.sh).

Core kinds: kubernetes-validate (bundled upstream OpenAPI schemas, strict: unknown fields
are errors). Custom resources: the JSON Schemas in deploy/schemas/ (from the upstream CRDs,
see extract.py). Any other kind is an error, so nothing goes unchecked.

Usage: validate.py KUBERNETES_VERSION FILE... (a file may hold several documents; `-` is stdin)
"""
import json
import os
import sys

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CUSTOM = {
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): "rabbitmqcluster_rabbitmq.com_v1beta1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject_keda.sh_v1alpha1.json",
    ("keda.sh/v1alpha1", "ScaledJob"): "scaledjob_keda.sh_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication_keda.sh_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor_monitoring.coreos.com_v1.json",
}
CORE_GROUPS = ("v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1", "autoscaling/v2", "rbac.authorization.k8s.io/v1")
_schemas = {}


def custom_validator(name):
    if name not in _schemas:
        with open(os.path.join(HERE, "schemas", name)) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        _schemas[name] = cls(schema)
    return _schemas[name]


def check(doc, version):
    """Returns a list of error strings for one document."""
    api, kind = doc.get("apiVersion"), doc.get("kind")
    if (api, kind) in CUSTOM:
        validator = custom_validator(CUSTOM[(api, kind)])
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        ]
    if api in CORE_GROUPS:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            return []
        except kubernetes_validate.ValidationError as e:
            path = "/".join(map(str, e.path)) or "<root>"
            return [f"{path}: {e.message}"]
        except kubernetes_validate.utils.SchemaNotFoundError as e:
            return [f"no schema: {e}"]
    return [f"unknown kind {api} {kind}: add its schema to deploy/schemas/"]


def main():
    version, files = sys.argv[1], sys.argv[2:]
    failures = checked = 0
    for path in files:
        text = sys.stdin.read() if path == "-" else open(path).read()
        base = os.path.basename(path)
        if path == "-":
            label = "<stdin>"
        elif base.startswith("rendered-"):  # validate.sh's kustomize output
            label = "rendered " + base[len("rendered-"):-len(".yaml")].replace("_", "/")
        else:
            label = os.path.relpath(path)
        for doc in yaml.safe_load_all(text):
            if not doc:
                continue
            if doc.get("kind") == "Kustomization":
                continue
            checked += 1
            where = f"{label}: {doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            errors = check(doc, version)
            for error in errors:
                print(f"INVALID {where}: {error}")
            failures += bool(errors)
            if not errors:
                print(f"ok      {where}")
    print(f"{checked} manifests checked, {failures} invalid")
    return 1 if failures or not checked else 0


if __name__ == "__main__":
    sys.exit(main())
