//! The worker's settings (the README's "Configuration" table). Each subcommand validates only what it
//! uses: `worker context` reads none of this.

use shared::settings::{CommonSettings, Env, SettingsError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which task handler runs the tasks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandlerKind {
    /// The coding agent (QuickFix, Plan, Implement).
    Agent,
    /// TEST ONLY: records each task to a folder, sleeps and fails on demand. Selected with
    /// `WORKER_HANDLER=test`; it never touches a tracker, git or an LLM.
    Test { record_dir: PathBuf },
}

/// Settings of the consuming worker (`worker`, `worker --once`).
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub common: CommonSettings,
    pub concurrency: u16,
    pub workspace_dir: PathBuf,
    pub task_timeout: Duration,
    pub shutdown_grace: Duration,
    pub metrics_bind: SocketAddr,
    pub once_idle: Duration,
    pub clone_timeout: Duration,
    pub clone_max_bytes: u64,
    pub handler: HandlerKind,
    /// `GITHUB_RATE_LIMIT_MAX_WAIT_SECS`: the longest rate limit (GitHub, Jira) a task waits
    /// out in-process (five times that in total per attempt); longer ones are delayed retries.
    pub rate_limit_max_wait: Duration,
    /// `TASK_MAX_WAITS`, `TASK_MAX_WAIT_SECS`: how long a task may wait in delayed retries.
    pub wait_limits: shared::queue::WaitLimits,
    /// `MAX_RUNNING_PER_USER` (2), `MAX_RUNNING_PER_REPO` (4), `MAX_TASKS_PER_USER_PER_DAY`
    /// (none): the fleet's quotas, enforced through the ledger (`DATABASE_URL`).
    pub quotas: fleet_ledger::quota::QuotaLimits,
    /// `NOTIFY_URL` and `NOTIFY_SECRET`: where each finished, failed or cancelled task is
    /// told, signed (none: nobody is told).
    pub notify: Option<fleet_ledger::notify::NotifyConfig>,
}

impl WorkerSettings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let common = CommonSettings::from_env(env)?;
        let concurrency: u16 = env.positive_or("WORKER_CONCURRENCY", 1)?;
        let workspace_dir = env
            .get("WORKSPACE_DIR")
            .map_or_else(std::env::temp_dir, PathBuf::from);
        let task_timeout = secs(env, "TASK_TIMEOUT_SECS", 1200)?;
        let shutdown_grace = secs(env, "SHUTDOWN_GRACE_SECS", 900)?;
        let handler = match env.string_or("WORKER_HANDLER", "agent").as_str() {
            "agent" => HandlerKind::Agent,
            "test" => HandlerKind::Test {
                record_dir: PathBuf::from(env.get("TEST_HANDLER_DIR").ok_or_else(|| {
                    SettingsError::new("TEST_HANDLER_DIR", "is required with WORKER_HANDLER=test")
                })?),
            },
            other => {
                return Err(SettingsError::new(
                    "WORKER_HANDLER",
                    format!("must be `agent` (or `test`, for tests only), not `{other}`"),
                ));
            }
        };
        let notify = notify(env)?;
        Ok(Self {
            notify,
            common,
            concurrency,
            workspace_dir,
            task_timeout,
            shutdown_grace,
            metrics_bind: env.parse_or("METRICS_BIND", SocketAddr::from(([0, 0, 0, 0], 9090)))?,
            once_idle: secs(env, "ONCE_IDLE_SECS", 30)?,
            clone_timeout: secs(env, "CLONE_TIMEOUT_SECS", 300)?,
            clone_max_bytes: env.parse_or("CLONE_MAX_BYTES", 2_147_483_648u64)?,
            handler,
            rate_limit_max_wait: Duration::from_secs(
                env.parse_or("GITHUB_RATE_LIMIT_MAX_WAIT_SECS", 60u64)?,
            ),
            wait_limits: shared::queue::WaitLimits {
                max_waits: env.parse_or("TASK_MAX_WAITS", 100u32)?,
                max_total: secs(env, "TASK_MAX_WAIT_SECS", 7200)?,
            },
            quotas: fleet_ledger::quota::QuotaLimits {
                running_per_user: Some(env.positive_or("MAX_RUNNING_PER_USER", 2u32)?),
                running_per_repo: Some(env.positive_or("MAX_RUNNING_PER_REPO", 4u32)?),
                tasks_per_user_per_day: match env.get("MAX_TASKS_PER_USER_PER_DAY") {
                    None => None,
                    Some(_) => Some(env.positive_or("MAX_TASKS_PER_USER_PER_DAY", 1u32)?),
                },
            },
        })
    }
}

/// `NOTIFY_URL` (http or https) with its `NOTIFY_SECRET`, which it requires: receivers
/// verify the signature, so an unsigned notification is never sent.
fn notify(env: &Env) -> Result<Option<fleet_ledger::notify::NotifyConfig>, SettingsError> {
    let Some(url) = env.get("NOTIFY_URL") else {
        return Ok(None);
    };
    let url = url.trim().to_owned();
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
        _ => {
            return Err(SettingsError::new(
                "NOTIFY_URL",
                "must be an http:// or https:// URL",
            ));
        }
    }
    let secret = env
        .get("NOTIFY_SECRET")
        .ok_or_else(|| SettingsError::new("NOTIFY_SECRET", "is required with NOTIFY_URL"))?;
    Ok(Some(fleet_ledger::notify::NotifyConfig {
        url,
        secret: secret.into_bytes(),
    }))
}

fn secs(env: &Env, name: &'static str, default: u64) -> Result<Duration, SettingsError> {
    let value: u64 = env.parse_or(name, default)?;
    if value == 0 {
        return Err(SettingsError::new(name, "must be at least 1 second"));
    }
    Ok(Duration::from_secs(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_design() {
        let s = WorkerSettings::from_env(&Env::from_map([("X", "1")])).expect("defaults");
        assert_eq!(s.concurrency, 1);
        assert_eq!(s.task_timeout, Duration::from_secs(1200));
        assert_eq!(s.shutdown_grace, Duration::from_secs(900));
        assert_eq!(s.once_idle, Duration::from_secs(30));
        assert_eq!(s.metrics_bind.port(), 9090);
        assert_eq!(s.handler, HandlerKind::Agent);
        assert_eq!(s.quotas.running_per_user, Some(2));
        assert_eq!(s.quotas.running_per_repo, Some(4));
        assert_eq!(s.quotas.tasks_per_user_per_day, None);
        assert!(s.notify.is_none());
    }

    #[test]
    fn a_notify_url_needs_its_secret_and_the_secret_is_not_shown() {
        let err = WorkerSettings::from_env(&Env::from_map([("NOTIFY_URL", "https://n.example/h")]))
            .expect_err("no secret");
        assert_eq!(err.variable, "NOTIFY_SECRET");
        let err = WorkerSettings::from_env(&Env::from_map([
            ("NOTIFY_URL", "ftp://n.example/h"),
            ("NOTIFY_SECRET", "s3cret-value"),
        ]))
        .expect_err("not http");
        assert_eq!(err.variable, "NOTIFY_URL");
        let s = WorkerSettings::from_env(&Env::from_map([
            ("NOTIFY_URL", "https://n.example/h"),
            ("NOTIFY_SECRET", "s3cret-value"),
        ]))
        .expect("notify");
        assert!(!format!("{s:?}").contains("s3cret-value"), "{s:?}");
        assert_eq!(s.notify.expect("set").secret, b"s3cret-value");
    }

    #[test]
    fn errors_name_the_variable() {
        for (var, value) in [
            ("WORKER_CONCURRENCY", "0"),
            ("TASK_TIMEOUT_SECS", "soon"),
            ("SHUTDOWN_GRACE_SECS", "0"),
            ("METRICS_BIND", "9090"),
            ("WORKER_HANDLER", "magic"),
            ("MAX_RUNNING_PER_USER", "0"),
            ("MAX_RUNNING_PER_REPO", "many"),
            ("MAX_TASKS_PER_USER_PER_DAY", "0"),
        ] {
            let err = WorkerSettings::from_env(&Env::from_map([(var, value)]))
                .expect_err(&format!("{var}={value}"));
            assert_eq!(err.variable, var);
        }
        let err = WorkerSettings::from_env(&Env::from_map([("WORKER_HANDLER", "test")]))
            .expect_err("needs a dir");
        assert_eq!(err.variable, "TEST_HANDLER_DIR");
    }
}
