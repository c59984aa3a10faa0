//! The `ingest` binary: settings from the environment, telemetry, serve until SIGTERM.

use ingest::{Application, IngestSettings};
use shared::settings::Env;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = match IngestSettings::from_env(&Env::process()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("ingest: invalid settings: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    shared::telemetry::init_tracing(settings.common.log_format);
    if settings.github_secrets.is_empty() && settings.jira_secret.is_none() {
        tracing::warn!(
            "neither GITHUB_WEBHOOK_SECRET nor JIRA_WEBHOOK_SECRET is set: every webhook route answers 404"
        );
    }
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            tracing::error!(%error, "ingest cannot start");
            return std::process::ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(shared::signals::terminated()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "ingest failed");
            std::process::ExitCode::FAILURE
        }
    }
}
