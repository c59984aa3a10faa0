//! Cross-checks the deployment files (deploy/, keda/, docker-compose.yml, .env.example)
//! against the code: the settings the binaries require are provided (checked with the
//! services' own settings parsers), ports and probe paths match the routes, the queue name
//! agrees everywhere, and the timeout pair holds: task timeout < shutdown grace <
//! terminationGracePeriodSeconds, and task timeout < RabbitMQ's consumer_timeout.
//!
//! Schema validity is deploy/validate.sh's job; this test reads the files as written (no
//! kustomize), resolving envFrom / valueFrom references by hand. No network, no broker.

mod common;

use common::internals::{AgentSettings, WorkerSettings};
use serde_yaml_ng::{Mapping, Value};
use shared::settings::{CommonSettings, Env};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const INGEST_PORT: u16 = 8080;
const HEALTHZ: &str = "/healthz";
const READYZ: &str = "/readyz";

/// Every setting the binaries read (docs/contracts.md "Settings", README "Configuration"), except
/// the test-only ones. The README's table is read too, so a new setting shows up here.
const SETTINGS: &[&str] = &[
    "AMQP_URL",
    "TASK_QUEUE",
    "TASK_DELIVERY_LIMIT",
    "LOG_FORMAT",
    "RUST_LOG",
    "AGENT_GITHUB_LOGIN",
    "AGENT_JIRA_ACCOUNT_ID",
    "DATABASE_URL",
    "LEDGER_BUFFER",
    "API_TOKENS",
    "INGEST_BIND",
    "GITHUB_WEBHOOK_SECRET",
    "JIRA_WEBHOOK_SECRET",
    "TRIGGER_LABELS",
    "DEFAULT_MODE",
    "JIRA_PROJECTS",
    "JIRA_REPO_FROM_LABEL",
    "MAX_BODY_BYTES",
    "WORKER_CONCURRENCY",
    "WORKSPACE_DIR",
    "TASK_TIMEOUT_SECS",
    "SHUTDOWN_GRACE_SECS",
    "METRICS_BIND",
    "ONCE_IDLE_SECS",
    "CLONE_TIMEOUT_SECS",
    "CLONE_MAX_BYTES",
    "GITHUB_API_URL",
    "GITHUB_TOKEN",
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY",
    "AGENT_GIT_NAME",
    "AGENT_GIT_EMAIL",
    "JIRA_BASE_URL",
    "JIRA_USER_EMAIL",
    "JIRA_API_TOKEN",
    "JIRA_APPROVERS",
    "LLM_PROVIDER",
    "LLM_MODEL",
    "LLM_BASE_URL",
    "LLM_MAX_TOKENS",
    "LLM_TIMEOUT_SECS",
    "LLM_MAX_RETRIES",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "CONTEXT_TOKEN_BUDGET",
    "ALLOW_WORKFLOW_EDITS",
    "TASK_MAX_LLM_CALLS",
    "TASK_MAX_TOKENS",
    "TASK_MAX_COST_USD",
    "LLM_PRICES",
    "MAX_RUNNING_PER_USER",
    "MAX_RUNNING_PER_REPO",
    "MAX_TASKS_PER_USER_PER_DAY",
    "NOTIFY_URL",
    "NOTIFY_SECRET",
    "CHECKS",
    "CHECK_TIMEOUT_SECS",
    "CHECK_OUTPUT_BYTES",
    "SANDBOX",
    "CHECK_ENV",
    "CI_FIX_ROUNDS",
];

// ---------------------------------------------------------------------------------------
// Loading

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("worker/ has a parent")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml_docs(rel: &str) -> Vec<Value> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value: Value = serde::Deserialize::deserialize(doc)
                .unwrap_or_else(|e| panic!("{rel}: invalid YAML: {e}"));
            value
                .apply_merge()
                .unwrap_or_else(|e| panic!("{rel}: merge keys: {e}"));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// The Kubernetes objects of deploy/base and keda/ (not kustomizations, not compose files).
struct Cluster {
    objects: Vec<(String, Value)>,
}

impl Cluster {
    fn load() -> Self {
        let mut files = Vec::new();
        for dir in ["deploy/base", "keda"] {
            collect_yaml(&root().join(dir), &mut files);
        }
        files.sort();
        let objects = files
            .iter()
            .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
            .flat_map(|path| {
                let rel = path
                    .strip_prefix(root())
                    .expect("under root")
                    .to_string_lossy()
                    .into_owned();
                yaml_docs(&rel)
                    .into_iter()
                    .map(move |doc| (rel.clone(), doc))
            })
            .collect();
        Self { objects }
    }

    fn all(&self, kind: &str) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(_, doc)| s(doc, "kind") == Some(kind))
            .map(|(_, doc)| doc)
            .collect()
    }

    /// The first object of `kind` (there must be one).
    fn first(&self, kind: &str) -> &Value {
        self.all(kind)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("a {kind}"))
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        let found: Vec<_> = self
            .all(kind)
            .into_iter()
            .filter(|doc| s(doc, "metadata.name") == Some(name))
            .collect();
        assert_eq!(found.len(), 1, "exactly one {kind}/{name} expected");
        found[0]
    }

    /// A ConfigMap's `data` or a Secret's `stringData` + `data` (base64 decoded).
    fn key_values(&self, kind: &str, name: &str) -> BTreeMap<String, String> {
        let doc = self.get(kind, name);
        let mut out = BTreeMap::new();
        for field in ["data", "stringData"] {
            if let Some(Value::Mapping(map)) = at(doc, field) {
                for (k, v) in map {
                    let key = k.as_str().expect("string key").to_owned();
                    let value = scalar(v).unwrap_or_else(|| panic!("{kind}/{name} {key}"));
                    let value = if kind == "Secret" && field == "data" {
                        base64_decode(&value)
                    } else {
                        value
                    };
                    out.insert(key, value);
                }
            }
        }
        out
    }

    /// The environment a container gets: envFrom (ConfigMaps, Secrets) then env (values,
    /// configMapKeyRef, secretKeyRef), every reference resolved in these files.
    fn container_env(&self, container: &Value) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for source in seq(container, "envFrom") {
            let (kind, reference) = if let Some(r) = at(source, "configMapRef") {
                ("ConfigMap", r)
            } else if let Some(r) = at(source, "secretRef") {
                ("Secret", r)
            } else {
                panic!("unsupported envFrom entry {source:?}")
            };
            let name = s(reference, "name").expect("envFrom name");
            env.extend(self.key_values(kind, name));
        }
        for var in seq(container, "env") {
            let name = s(var, "name").expect("env name").to_owned();
            let value = if let Some(value) = at(var, "value") {
                scalar(value).expect("env value")
            } else if let Some(r) = at(var, "valueFrom.configMapKeyRef") {
                self.key_values("ConfigMap", s(r, "name").expect("name"))[s(r, "key").expect("key")]
                    .clone()
            } else if let Some(r) = at(var, "valueFrom.secretKeyRef") {
                self.key_values("Secret", s(r, "name").expect("name"))[s(r, "key").expect("key")]
                    .clone()
            } else {
                panic!("unsupported env entry {var:?}")
            };
            env.insert(name, value);
        }
        env
    }
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Small YAML helpers

/// The value at a dotted path (`spec.template.spec`).
fn at<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

fn s<'a>(value: &'a Value, path: &str) -> Option<&'a str> {
    at(value, path).and_then(Value::as_str)
}

fn u(value: &Value, path: &str) -> Option<u64> {
    at(value, path).and_then(Value::as_u64)
}

fn seq<'a>(value: &'a Value, path: &str) -> Vec<&'a Value> {
    match at(value, path) {
        Some(Value::Sequence(items)) => items.iter().collect(),
        None | Some(Value::Null) => Vec::new(),
        Some(other) => panic!("{path} is not a list: {other:?}"),
    }
}

/// Strings, numbers and booleans as the text an environment variable would carry.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn strings(value: &Value, path: &str) -> Vec<String> {
    seq(value, path)
        .into_iter()
        .map(|v| scalar(v).expect("a scalar"))
        .collect()
}

fn base64_decode(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for byte in text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
    {
        let index = ALPHABET.iter().position(|a| *a == byte).expect("base64") as u32;
        bits = (bits << 6) | index;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    String::from_utf8(out).expect("utf-8 secret")
}

fn only_container(pod_spec: &Value, what: &str) -> Value {
    let containers = seq(pod_spec, "containers");
    assert_eq!(containers.len(), 1, "{what}: one container expected");
    containers[0].clone()
}

fn port_of(bind: &str) -> u16 {
    bind.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in bind address {bind}"))
}

fn container_port(container: &Value, name: &str) -> u16 {
    seq(container, "ports")
        .into_iter()
        .find(|p| s(p, "name") == Some(name))
        .and_then(|p| u(p, "containerPort"))
        .unwrap_or_else(|| panic!("no container port named {name}")) as u16
}

// ---------------------------------------------------------------------------------------
// Shared checks

/// The parsed settings of a worker that gets `env`: the worker's own parsers must accept
/// them, exactly as `worker` does at start-up (the agent handler's settings included).
fn worker_settings(env: &BTreeMap<String, String>, what: &str) -> WorkerSettings {
    let vars = Env::from_map(env.clone());
    for required in ["AMQP_URL", "LLM_MODEL"] {
        assert!(
            vars.get(required).is_some(),
            "{what}: {required} is required but not provided"
        );
    }
    assert!(
        vars.get("GITHUB_TOKEN").is_some()
            || (vars.get("GITHUB_APP_ID").is_some()
                && vars.get("GITHUB_APP_PRIVATE_KEY").is_some()),
        "{what}: GITHUB_TOKEN (or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY) is required"
    );
    if vars.get("LLM_BASE_URL").is_none() {
        let key = match vars.string_or("LLM_PROVIDER", "anthropic").as_str() {
            "openai" => "OPENAI_API_KEY",
            _ => "ANTHROPIC_API_KEY",
        };
        assert!(
            vars.get(key).is_some(),
            "{what}: {key} is required for the hosted API"
        );
    }
    assert!(
        vars.get("WORKER_HANDLER").is_none_or(|h| h == "agent"),
        "{what}: WORKER_HANDLER is test-only"
    );
    let settings = WorkerSettings::from_env(&vars)
        .unwrap_or_else(|e| panic!("{what}: the worker would refuse to start: {e}"));
    AgentSettings::from_env(&vars)
        .unwrap_or_else(|e| panic!("{what}: the worker would refuse to start: {e}"));
    settings
}

/// Probes on the given port (by name or number) with the routes /healthz and /readyz.
fn assert_probes(container: &Value, port_name: &str, port: u16, what: &str) {
    for (probe, path) in [("livenessProbe", HEALTHZ), ("readinessProbe", READYZ)] {
        let get = at(container, &format!("{probe}.httpGet"))
            .unwrap_or_else(|| panic!("{what}: {probe}.httpGet missing"));
        assert_eq!(s(get, "path"), Some(path), "{what}: {probe} path");
        let probe_port = scalar(at(get, "port").expect("probe port")).expect("port");
        assert!(
            probe_port == port_name || probe_port == port.to_string(),
            "{what}: {probe} port {probe_port} is not {port_name}/{port}"
        );
    }
}

/// Non-root, read-only root filesystem, no capabilities, and every path the worker writes
/// (WORKSPACE_DIR, /tmp, HOME) on an emptyDir with a size limit.
fn assert_worker_pod_hardening(
    pod: &Value,
    container: &Value,
    env: &BTreeMap<String, String>,
    what: &str,
) {
    assert_eq!(
        at(pod, "securityContext.runAsNonRoot"),
        Some(&Value::Bool(true)),
        "{what}: runAsNonRoot"
    );
    assert!(
        u(pod, "securityContext.runAsUser").is_some_and(|uid| uid != 0),
        "{what}: uid"
    );
    assert_eq!(
        at(container, "securityContext.readOnlyRootFilesystem"),
        Some(&Value::Bool(true)),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        at(container, "securityContext.allowPrivilegeEscalation"),
        Some(&Value::Bool(false)),
        "{what}: allowPrivilegeEscalation"
    );
    assert_eq!(
        strings(container, "securityContext.capabilities.drop"),
        vec!["ALL".to_owned()],
        "{what}: capabilities"
    );
    let mounts: BTreeMap<String, String> = seq(container, "volumeMounts")
        .into_iter()
        .map(|m| {
            (
                s(m, "mountPath").expect("mountPath").to_owned(),
                s(m, "name").expect("name").to_owned(),
            )
        })
        .collect();
    let workspace = env.get("WORKSPACE_DIR").expect("WORKSPACE_DIR is set");
    let home = env
        .get("HOME")
        .expect("HOME is set (git needs a writable one)");
    for path in [workspace.as_str(), "/tmp", home.as_str()] {
        let volume_name = mounts
            .get(path)
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {path}"));
        let volume = seq(pod, "volumes")
            .into_iter()
            .find(|v| s(v, "name") == Some(volume_name.as_str()))
            .unwrap_or_else(|| panic!("{what}: volume {volume_name} missing"));
        assert!(
            s(volume, "emptyDir.sizeLimit").is_some(),
            "{what}: {path} must be an emptyDir with a sizeLimit"
        );
    }
}

fn consumer_timeout_ms(config: &str, what: &str) -> u64 {
    config
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "consumer_timeout").then(|| value.trim().parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("{what}: consumer_timeout is not set"))
}

fn assert_timeout_pair(
    settings: &WorkerSettings,
    termination_grace: Duration,
    consumer_timeout: Duration,
    what: &str,
) {
    assert!(
        settings.task_timeout < termination_grace,
        "{what}: terminationGracePeriodSeconds {termination_grace:?} must exceed TASK_TIMEOUT_SECS {:?}",
        settings.task_timeout
    );
    assert!(
        settings.shutdown_grace < termination_grace,
        "{what}: the pod must outlive SHUTDOWN_GRACE_SECS {:?} (got {termination_grace:?})",
        settings.shutdown_grace
    );
    assert!(
        settings.task_timeout < consumer_timeout,
        "{what}: TASK_TIMEOUT_SECS {:?} must stay below consumer_timeout {consumer_timeout:?}",
        settings.task_timeout
    );
}

// ---------------------------------------------------------------------------------------
// Kubernetes

fn rabbitmq_consumer_timeout(cluster: &Cluster) -> Duration {
    let rabbit = cluster.first("RabbitmqCluster");
    assert_eq!(s(rabbit, "apiVersion"), Some("rabbitmq.com/v1beta1"));
    let config = s(rabbit, "spec.rabbitmq.additionalConfig").expect("additionalConfig");
    Duration::from_millis(consumer_timeout_ms(config, "RabbitmqCluster"))
}

#[test]
fn worker_deployment_gets_every_required_setting_and_keeps_the_timeout_pair() {
    let cluster = Cluster::load();
    let deployment = cluster.get("Deployment", "worker");
    assert!(
        at(deployment, "spec.replicas").is_none(),
        "the worker Deployment must leave `replicas` to KEDA"
    );
    let pod = at(deployment, "spec.template.spec").expect("pod spec");
    let container = only_container(pod, "worker Deployment");
    assert_eq!(
        strings(&container, "args"),
        vec!["worker"],
        "the consuming worker"
    );
    let env = cluster.container_env(&container);
    let settings = worker_settings(&env, "worker Deployment");

    let port = container_port(&container, "metrics");
    assert_eq!(
        settings.metrics_bind.port(),
        port,
        "METRICS_BIND vs containerPort"
    );
    assert_probes(&container, "metrics", port, "worker Deployment");
    assert_worker_pod_hardening(pod, &container, &env, "worker Deployment");

    let grace = Duration::from_secs(u(pod, "terminationGracePeriodSeconds").expect("grace"));
    assert_timeout_pair(
        &settings,
        grace,
        rabbitmq_consumer_timeout(&cluster),
        "worker Deployment",
    );
}

#[test]
fn scaled_job_runs_worker_once_with_every_required_setting() {
    let cluster = Cluster::load();
    let job = cluster.first("ScaledJob");
    let pod = at(job, "spec.jobTargetRef.template.spec").expect("pod spec");
    let container = only_container(pod, "ScaledJob");
    let args = strings(&container, "args");
    assert_eq!(args.first().map(String::as_str), Some("worker"));
    assert!(
        args.iter().any(|a| a == "--once"),
        "`--once` must be its own element of args: {args:?}"
    );
    assert_eq!(s(job, "spec.scalingStrategy.strategy"), Some("accurate"));
    assert_eq!(
        s(job, "spec.rollout.strategy"),
        Some("gradual"),
        "an update must not delete running Jobs (tasks)"
    );
    assert_eq!(s(pod, "restartPolicy"), Some("Never"));

    let env = cluster.container_env(&container);
    let settings = worker_settings(&env, "ScaledJob");
    assert_worker_pod_hardening(pod, &container, &env, "ScaledJob");
    assert_eq!(
        settings.metrics_bind.port(),
        container_port(&container, "metrics")
    );
    let grace = Duration::from_secs(u(pod, "terminationGracePeriodSeconds").expect("grace"));
    assert_timeout_pair(
        &settings,
        grace,
        rabbitmq_consumer_timeout(&cluster),
        "ScaledJob",
    );
    // The Job must not be killed before an idle wait plus one whole task.
    let deadline =
        Duration::from_secs(u(job, "spec.jobTargetRef.activeDeadlineSeconds").expect("deadline"));
    assert!(
        deadline > settings.once_idle + settings.task_timeout,
        "activeDeadlineSeconds {deadline:?} must exceed ONCE_IDLE_SECS + TASK_TIMEOUT_SECS"
    );
}

#[test]
fn ingest_ports_probes_service_and_ingress_match_the_routes() {
    let cluster = Cluster::load();
    let deployment = cluster.get("Deployment", "ingest");
    assert_eq!(u(deployment, "spec.replicas"), Some(2));
    let pod = at(deployment, "spec.template.spec").expect("pod spec");
    let container = only_container(pod, "ingest");
    assert_eq!(strings(&container, "args"), vec!["ingest"]);
    let env = cluster.container_env(&container);
    let vars = Env::from_map(env.clone());
    CommonSettings::from_env(&vars).unwrap_or_else(|e| panic!("ingest: {e}"));
    assert!(vars.get("AMQP_URL").is_some(), "ingest: AMQP_URL");
    assert!(
        vars.get("GITHUB_WEBHOOK_SECRET").is_some(),
        "ingest: without GITHUB_WEBHOOK_SECRET /webhooks/github answers 404"
    );
    let bind = env.get("INGEST_BIND").map_or(INGEST_PORT, |b| port_of(b));
    let port = container_port(&container, "http");
    assert_eq!(bind, port, "INGEST_BIND vs containerPort");
    assert_probes(&container, "http", port, "ingest");
    assert!(
        at(&container, "resources.requests").is_some(),
        "ingest: resources"
    );
    assert!(
        at(&container, "resources.limits").is_some(),
        "ingest: resources"
    );

    let template_labels = at(deployment, "spec.template.metadata.labels").expect("labels");
    let service = cluster.get("Service", "ingest");
    let selects = |selector: &Value| {
        selector
            .as_mapping()
            .expect("selector")
            .iter()
            .all(|(k, v)| template_labels.get(k.as_str().expect("key")) == Some(v))
    };
    assert!(selects(at(service, "spec.selector").expect("selector")));
    for service_port in seq(service, "spec.ports") {
        let target = scalar(at(service_port, "targetPort").expect("targetPort")).expect("port");
        assert!(
            target == "http" || target == port.to_string(),
            "Service targetPort {target}"
        );
    }
    let pdb = cluster.first("PodDisruptionBudget");
    assert!(selects(
        at(pdb, "spec.selector.matchLabels").expect("PDB selector")
    ));

    let ingress = cluster.get("Ingress", "ingest");
    let paths: Vec<&Value> = seq(ingress, "spec.rules")
        .into_iter()
        .flat_map(|r| seq(r, "http.paths"))
        .collect();
    assert!(!paths.is_empty());
    let service_ports: BTreeSet<String> = seq(service, "spec.ports")
        .into_iter()
        .map(|p| s(p, "name").expect("port name").to_owned())
        .collect();
    for path in paths {
        assert!(
            s(path, "path").is_some_and(|p| p.starts_with("/webhooks")),
            "only the webhooks are public"
        );
        assert_eq!(s(path, "backend.service.name"), Some("ingest"));
        let backend_port = s(path, "backend.service.port.name").expect("port by name");
        assert!(service_ports.contains(backend_port));
    }
}

#[test]
fn keda_triggers_agree_with_the_queue_and_the_concurrency() {
    let cluster = Cluster::load();
    let worker = cluster.get("Deployment", "worker");
    let container = only_container(at(worker, "spec.template.spec").expect("pod"), "worker");
    let env = cluster.container_env(&container);
    let settings = worker_settings(&env, "worker Deployment");
    let queue = settings.common.task_queue.clone();

    let scaled_object = cluster.first("ScaledObject");
    assert_eq!(s(scaled_object, "spec.scaleTargetRef.name"), Some("worker"));
    assert_eq!(u(scaled_object, "spec.minReplicaCount"), Some(0));
    assert!(u(scaled_object, "spec.maxReplicaCount").is_some_and(|m| m >= 1));
    let scaled_job = cluster.first("ScaledJob");
    for (what, scaler) in [("ScaledObject", scaled_object), ("ScaledJob", scaled_job)] {
        let triggers = seq(scaler, "spec.triggers");
        assert_eq!(triggers.len(), 1, "{what}: one trigger");
        let trigger = triggers[0];
        assert_eq!(s(trigger, "type"), Some("rabbitmq"), "{what}");
        assert_eq!(
            s(trigger, "metadata.protocol"),
            Some("http"),
            "{what}: protocol"
        );
        assert_eq!(
            s(trigger, "metadata.mode"),
            Some("QueueLength"),
            "{what}: mode"
        );
        assert_eq!(
            s(trigger, "metadata.queueName"),
            Some(queue.as_str()),
            "{what}: queueName vs TASK_QUEUE"
        );
        assert_eq!(
            s(trigger, "metadata.value"),
            Some(settings.concurrency.to_string().as_str()),
            "{what}: one pod per WORKER_CONCURRENCY tasks"
        );
        let auth_name = s(trigger, "authenticationRef.name").expect("authenticationRef");
        let auth = cluster.get("TriggerAuthentication", auth_name);
        let target = seq(auth, "spec.secretTargetRef")
            .into_iter()
            .find(|t| s(t, "parameter") == Some("host"))
            .expect("host from a Secret");
        let secret = cluster.key_values("Secret", s(target, "name").expect("secret name"));
        let host = &secret[s(target, "key").expect("secret key")];
        assert!(
            host.starts_with("http://") || host.starts_with("https://"),
            "{what}: management API URL"
        );
        assert!(host.contains(":15672"), "{what}: the management API port");
    }
}

#[test]
fn service_monitor_scrapes_both_services() {
    let cluster = Cluster::load();
    let monitor = cluster.first("ServiceMonitor");
    assert_eq!(s(monitor, "apiVersion"), Some("monitoring.coreos.com/v1"));
    let selector = at(monitor, "spec.selector.matchLabels")
        .and_then(Value::as_mapping)
        .expect("matchLabels");
    let endpoint_ports: BTreeSet<&str> = seq(monitor, "spec.endpoints")
        .into_iter()
        .map(|e| {
            assert_eq!(s(e, "path").unwrap_or("/metrics"), "/metrics");
            s(e, "port").expect("endpoint port")
        })
        .collect();
    let matches = |svc: &Value| {
        at(svc, "metadata.labels")
            .and_then(Value::as_mapping)
            .is_some_and(|l: &Mapping| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
    };
    let mut names = BTreeSet::new();
    for service in cluster
        .all("Service")
        .into_iter()
        .filter(|svc| matches(svc))
    {
        let name = s(service, "metadata.name").expect("name").to_owned();
        assert!(
            seq(service, "spec.ports")
                .into_iter()
                .any(|p| s(p, "name").is_some_and(|n| endpoint_ports.contains(n))),
            "Service {name}: no port the ServiceMonitor scrapes ({endpoint_ports:?})"
        );
        names.insert(name);
    }
    // Each scraped Service selects the pods that serve its port: the Deployments' and the
    // ScaledJob's pod templates.
    let templates: Vec<&Value> = ["ingest", "worker"]
        .into_iter()
        .map(|n| at(cluster.get("Deployment", n), "spec.template").expect("template"))
        .chain(
            cluster
                .all("ScaledJob")
                .into_iter()
                .map(|j| at(j, "spec.jobTargetRef.template").expect("template")),
        )
        .collect();
    for name in &names {
        let service = cluster.get("Service", name);
        let selector = at(service, "spec.selector")
            .and_then(Value::as_mapping)
            .expect("Service selector");
        let selected: Vec<&&Value> = templates
            .iter()
            .filter(|t| {
                at(t, "metadata.labels")
                    .and_then(Value::as_mapping)
                    .is_some_and(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
            })
            .collect();
        assert!(!selected.is_empty(), "Service {name} selects no pods");
        for template in selected {
            let container = only_container(at(template, "spec").expect("pod"), name);
            for port in seq(service, "spec.ports") {
                let target = scalar(at(port, "targetPort").expect("targetPort")).expect("port");
                assert!(
                    seq(&container, "ports").into_iter().any(|p| {
                        s(p, "name") == Some(target.as_str())
                            || u(p, "containerPort").is_some_and(|n| n.to_string() == target)
                    }),
                    "Service {name}: targetPort {target} is not a port of its pods"
                );
            }
        }
    }
    assert!(
        names.contains("ingest"),
        "ingest Service not scraped: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("worker")),
        "worker Service not scraped: {names:?}"
    );
}

#[test]
fn grafana_dashboard_uses_only_metrics_the_code_exports() {
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/base/grafana-dashboard.json")).expect("dashboard JSON");
    let text = dashboard.to_string();
    let used: BTreeSet<String> = text
        .match_indices("agent_fleet_")
        .map(|(i, _)| {
            text[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .map(|name| {
            for suffix in ["_bucket", "_sum", "_count"] {
                if let Some(base) = name.strip_suffix(suffix) {
                    return base.to_owned();
                }
            }
            name
        })
        .collect();
    assert!(
        used.len() >= 10,
        "the dashboard covers the metrics: {used:?}"
    );
    let mut sources = String::new();
    for dir in [
        "shared/src",
        "ingest/src",
        "worker/src",
        "worker/llm/src",
        "ledger/src",
    ] {
        read_rust(&root().join(dir), &mut sources);
    }
    for metric in &used {
        assert!(
            sources.contains(&format!("\"{metric}\"")),
            "the dashboard queries {metric}, which no service exports"
        );
    }
}

fn read_rust(dir: &Path, out: &mut String) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            read_rust(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).expect("source"));
        }
    }
}

/// Variables named in README's "Configuration" table, except test-only rows.
fn readme_settings() -> BTreeSet<String> {
    let readme = read("README.md");
    let Some(start) = readme.find("## Configuration") else {
        return BTreeSet::new();
    };
    let section = &readme[start..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    section
        .lines()
        .filter(|l| l.starts_with("| `") && !l.to_ascii_lowercase().contains("test only"))
        .filter(|l| !l.to_ascii_lowercase().contains("standalone"))
        .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
        .collect()
}

#[test]
fn every_setting_is_offered_by_the_configmap_secrets_and_env_example() {
    let cluster = Cluster::load();
    let mut offered: BTreeSet<String> = BTreeSet::new();
    for doc in cluster
        .all("ConfigMap")
        .into_iter()
        .chain(cluster.all("Secret"))
    {
        for field in ["data", "stringData"] {
            if let Some(Value::Mapping(map)) = at(doc, field) {
                offered.extend(map.keys().filter_map(|k| k.as_str().map(str::to_owned)));
            }
        }
    }
    for name in ["ingest", "worker"] {
        let deployment = cluster.get("Deployment", name);
        let container = only_container(at(deployment, "spec.template.spec").expect("pod"), name);
        offered.extend(
            seq(&container, "env")
                .into_iter()
                .filter_map(|e| s(e, "name").map(str::to_owned)),
        );
    }
    let example = read(".env.example");
    let wanted: BTreeSet<String> = SETTINGS
        .iter()
        .map(|s| (*s).to_owned())
        .chain(readme_settings())
        .collect();
    for name in &wanted {
        assert!(
            offered.contains(name),
            "{name} is in neither the ConfigMap, a Secret nor a container's env"
        );
        assert!(
            example.contains(name.as_str()),
            "{name} is missing from .env.example"
        );
    }
}

// ---------------------------------------------------------------------------------------
// docker compose

/// `KEY=VALUE` lines of an env file.
fn env_file(rel: &str) -> BTreeMap<String, String> {
    read(rel)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or_else(|| panic!("{rel}: `{l}`"));
            (k.trim().to_owned(), v.to_owned())
        })
        .collect()
}

/// Compose's interpolation: `$$`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`,
/// `${VAR:?error}`, `${VAR?error}` (enough for docker-compose.yml).
fn interpolate(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').expect("closing brace");
            let expr = &after[..end];
            rest = &after[end + 1..];
            let name_end = expr
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len());
            let (name, op) = expr.split_at(name_end);
            let value = vars.get(name).cloned();
            let set = value.as_deref().is_some_and(|v| !v.is_empty());
            let replaced = if let Some(default) = op.strip_prefix(":-") {
                if set {
                    value.unwrap()
                } else {
                    default.to_owned()
                }
            } else if let Some(default) = op.strip_prefix('-') {
                value.unwrap_or_else(|| default.to_owned())
            } else if let Some(message) = op.strip_prefix(":?") {
                assert!(set, "compose would stop: {name}: {message}");
                value.unwrap()
            } else if let Some(message) = op.strip_prefix('?') {
                value.unwrap_or_else(|| panic!("compose would stop: {name}: {message}"))
            } else {
                assert!(op.is_empty(), "unsupported interpolation ${{{expr}}}");
                value.unwrap_or_default()
            };
            out.push_str(&replaced);
        } else {
            panic!("use ${{VAR}} in docker-compose.yml: {rest}");
        }
    }
    out.push_str(rest);
    out
}

fn interpolate_all(value: &mut Value, vars: &BTreeMap<String, String>) {
    match value {
        Value::String(text) => *text = interpolate(text, vars),
        Value::Sequence(items) => items.iter_mut().for_each(|v| interpolate_all(v, vars)),
        Value::Mapping(map) => map.values_mut().for_each(|v| interpolate_all(v, vars)),
        _ => {}
    }
}

struct Compose {
    doc: Value,
    dotenv: BTreeMap<String, String>,
}

impl Compose {
    /// docker-compose.yml as `docker compose` would see it with .env = .env.example.
    fn load() -> Self {
        let dotenv = env_file(".env.example");
        // Like compose: parse the YAML, then interpolate the string values.
        let mut doc: Value =
            serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("compose YAML");
        doc.apply_merge().expect("merge keys");
        interpolate_all(&mut doc, &dotenv);
        Self { doc, dotenv }
    }

    fn service(&self, name: &str) -> &Value {
        self.doc
            .get("services")
            .and_then(|s| s.get(name))
            .unwrap_or_else(|| panic!("compose service `{name}` missing"))
    }

    /// env_file (.env → .env.example) overlaid with `environment`.
    fn env(&self, name: &str) -> BTreeMap<String, String> {
        let service = self.service(name);
        let mut env = BTreeMap::new();
        let files = match service.get("env_file") {
            None => Vec::new(),
            Some(Value::String(f)) => vec![f.clone()],
            Some(_) => strings(service, "env_file"),
        };
        for file in files {
            assert_eq!(file, ".env", "compose reads .env (made from .env.example)");
            env.extend(self.dotenv.clone());
        }
        match service.get("environment") {
            None => {}
            Some(Value::Mapping(map)) => {
                for (k, v) in map {
                    env.insert(
                        k.as_str().expect("key").to_owned(),
                        scalar(v).expect("value"),
                    );
                }
            }
            Some(Value::Sequence(items)) => {
                for item in items {
                    let item = item.as_str().expect("KEY=VALUE");
                    let (k, v) = item.split_once('=').expect("KEY=VALUE");
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
            Some(other) => panic!("environment: {other:?}"),
        }
        env
    }

    fn healthcheck(&self, name: &str) -> String {
        let test = self
            .service(name)
            .get("healthcheck")
            .and_then(|h| h.get("test"))
            .unwrap_or_else(|| panic!("compose {name}: no healthcheck"));
        match test {
            Value::String(s) => s.clone(),
            _ => strings(self.service(name), "healthcheck.test").join(" "),
        }
    }
}

/// `1320s`, `22m`, `1h2m3s`, or plain seconds.
fn compose_duration(text: &str) -> Duration {
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().expect("duration number");
        number.clear();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            other => panic!("duration unit {other}"),
        };
    }
    if !number.is_empty() {
        total += number.parse::<u64>().expect("seconds");
    }
    Duration::from_secs(total)
}

#[test]
fn compose_worker_gets_every_required_setting_and_keeps_the_timeout_pair() {
    let compose = Compose::load();
    for name in ["rabbitmq", "ingest", "worker"] {
        compose.healthcheck(name);
    }
    let worker = compose.service("worker");
    let env = compose.env("worker");
    let settings = worker_settings(&env, "compose worker");
    assert!(
        settings.common.amqp_url.expose().contains("@rabbitmq:5672"),
        "compose worker: AMQP_URL must point at the rabbitmq service"
    );
    let health = compose.healthcheck("worker");
    assert!(
        health.contains(&format!("/{}", settings.metrics_bind.port())),
        "worker healthcheck port"
    );
    assert!(
        health.contains(READYZ) || health.contains(HEALTHZ),
        "worker healthcheck path"
    );

    // consumer_timeout from the rabbitmq.conf the rabbitmq service mounts.
    let rabbit = compose.service("rabbitmq");
    assert!(
        s(rabbit, "image").is_some_and(|i| i.contains("management")),
        "rabbitmq with the management plugin"
    );
    let conf = strings(rabbit, "volumes")
        .into_iter()
        .find_map(|v| {
            let (source, target) = v.split_once(':')?;
            target
                .starts_with("/etc/rabbitmq/")
                .then(|| source.trim_start_matches("./").to_owned())
        })
        .expect("rabbitmq.conf mounted into /etc/rabbitmq");
    let consumer_timeout = Duration::from_millis(consumer_timeout_ms(&read(&conf), &conf));
    let stop_grace =
        compose_duration(s(worker, "stop_grace_period").expect("worker stop_grace_period"));
    assert_timeout_pair(&settings, stop_grace, consumer_timeout, "compose worker");
}

#[test]
fn compose_ingest_port_and_queue_agree() {
    let compose = Compose::load();
    let env = compose.env("ingest");
    let vars = Env::from_map(env.clone());
    let common = CommonSettings::from_env(&vars).unwrap_or_else(|e| panic!("compose ingest: {e}"));
    let bind = env.get("INGEST_BIND").map_or(INGEST_PORT, |b| port_of(b));
    let ports = strings(compose.service("ingest"), "ports");
    assert!(
        ports.iter().any(|p| p.ends_with(&format!(":{bind}"))),
        "compose ingest publishes INGEST_BIND's port {bind}: {ports:?}"
    );
    let health = compose.healthcheck("ingest");
    assert!(
        health.contains(&format!("/{bind}")) && health.contains(READYZ),
        "ingest healthcheck"
    );
    let worker = CommonSettings::from_env(&Env::from_map(compose.env("worker"))).expect("worker");
    assert_eq!(common.task_queue, worker.task_queue);
    // The Kubernetes side uses the same queue.
    let cluster = Cluster::load();
    let config = cluster.key_values("ConfigMap", "agent-fleet-config");
    let k8s_queue = config
        .get("TASK_QUEUE")
        .cloned()
        .unwrap_or(common.task_queue.clone());
    assert_eq!(
        k8s_queue, common.task_queue,
        "TASK_QUEUE: compose vs ConfigMap"
    );
}
