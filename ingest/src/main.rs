//! The `ingest` binary: settings from the environment, telemetry, serve until SIGTERM.
//! `ingest audit-export [--since <RFC 3339>]` writes the ledger's audit trail as JSON lines
//! (PostgreSQL's at `DATABASE_URL`, else the SQLite file `STANDALONE_DB` of `worker standalone`).

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
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("audit-export") {
        return audit_export(&settings, &args[1..]).await;
    }
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

/// `ingest audit-export`: reads `DATABASE_URL`, else the existing SQLite file
/// `STANDALONE_DB` (`worker standalone`'s ledger); exit 2 on bad arguments or without
/// either, 1 on a database error.
async fn audit_export(settings: &IngestSettings, args: &[String]) -> std::process::ExitCode {
    use secrecy::ExposeSecret;
    let since = match ingest::export::since_of(args) {
        Ok(since) => since,
        Err(error) => {
            eprintln!("ingest audit-export: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    let store = match (
        &settings.common.database_url,
        Env::process().get("STANDALONE_DB"),
    ) {
        (Some(url), _) => match fleet_ledger::pool(url.expose_secret(), 1) {
            Ok(pool) => fleet_ledger::Store::Postgres(pool),
            Err(error) => {
                eprintln!("ingest audit-export: {error}");
                return std::process::ExitCode::from(2);
            }
        },
        // Only a file that is there: opening a wrong path would make an empty ledger.
        (None, Some(path)) if std::path::Path::new(&path).is_file() => {
            match fleet_ledger::sqlite::SqliteLedger::open(std::path::Path::new(&path)).await {
                Ok(db) => fleet_ledger::Store::Sqlite(db),
                Err(error) => {
                    eprintln!("ingest audit-export: STANDALONE_DB {path}: {error}");
                    return std::process::ExitCode::FAILURE;
                }
            }
        }
        (None, Some(path)) => {
            eprintln!("ingest audit-export: STANDALONE_DB {path} is not a file");
            return std::process::ExitCode::from(2);
        }
        (None, None) => {
            eprintln!("ingest audit-export: neither DATABASE_URL nor STANDALONE_DB is set");
            return std::process::ExitCode::from(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match ingest::export::audit_jsonl(&store, since, &mut out).await {
        Ok(count) => {
            eprintln!("ingest audit-export: {count} entries");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ingest audit-export: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
