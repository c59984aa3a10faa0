#!/usr/bin/env bash
# Validates the deployment files without a cluster (deploy/README.md, "Validation"):
#   1. renders every kustomization (deploy/, deploy/overlays/scaledjob, keda/,
#      keda/scaledjob) with `kubectl kustomize` or `kustomize build` (skipped, with a note,
#      when neither is installed);
#   2. validates every manifest file and every rendered document against schemas:
#      core kinds with kubernetes-validate (offline, bundled schemas, strict), the custom
#      resources (RabbitmqCluster, ScaledObject, ScaledJob, TriggerAuthentication,
#      ServiceMonitor) with jsonschema against deploy/schemas/*.json;
#   3. checks the Grafana dashboard is JSON, and docker-compose.yml with `docker compose
#      config` when that is available.
# Exits non-zero on any invalid manifest. Python packages go to a venv under
# ~/.cache/agent-fleet (created on first use; needs python3 with venv and PyPI access once).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION="${K8S_VERSION:-1.33.0}"
REQUIREMENTS="kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.3"
VENV="${AGENT_FLEET_DEPLOY_VENV:-$HOME/.cache/agent-fleet/deploy-venv}"

if [[ ! -x "$VENV/bin/python" || "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]]; then
  echo "validate: installing $REQUIREMENTS into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  # shellcheck disable=SC2086
  "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
  echo "$REQUIREMENTS" > "$VENV/.requirements"
fi
PY="$VENV/bin/python"

status=0
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. Render.
roots=(deploy deploy/overlays/scaledjob keda keda/scaledjob)
render=""
if command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  render="kubectl kustomize"
elif command -v kustomize >/dev/null 2>&1; then
  render="kustomize build"
fi
rendered=()
if [[ -n "$render" ]]; then
  for root in "${roots[@]}"; do
    out="$tmp/rendered-$(echo "$root" | tr / _).yaml"
    if $render "$root" > "$out" 2> "$tmp/err"; then
      echo "render  $root ($render): $(grep -c '^kind:' "$out") objects"
      rendered+=("$out")
    else
      echo "INVALID $root: $render failed:"; cat "$tmp/err"; status=1
    fi
  done
else
  echo "render  skipped: neither kubectl nor kustomize is installed"
fi

# 2. Schemas: the files as written, then what kustomize made of them (namespace set,
#    generated ConfigMap, overlay patches applied).
mapfile -t files < <(find deploy keda -name '*.yaml' ! -name kustomization.yaml ! -path 'deploy/compose/*' | sort)
"$PY" deploy/validate.py "$K8S_VERSION" "${files[@]}" "${rendered[@]}" || status=1

# 3. Dashboard and compose.
"$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["panels"], "no panels"; print("ok      grafana dashboard:", len(d["panels"]), "panels")' \
  deploy/base/grafana-dashboard.json || status=1
if docker compose version >/dev/null 2>&1; then
  if [[ -f .env ]]; then envfile=.env; else envfile=.env.example; fi
  if docker compose --env-file "$envfile" config --quiet 2> "$tmp/err"; then
    echo "ok      docker-compose.yml (docker compose config, $envfile)"
  else
    echo "INVALID docker-compose.yml:"; cat "$tmp/err"; status=1
  fi
else
  echo "compose skipped: docker compose is not installed (worker/tests/manifests.rs still checks it)"
fi

if [[ $status -ne 0 ]]; then echo "validate: FAILED"; else echo "validate: all valid"; fi
exit $status
