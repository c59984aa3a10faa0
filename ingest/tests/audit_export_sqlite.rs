//! `ingest audit-export` on `worker standalone`'s ledger: with no `DATABASE_URL` it reads the
//! SQLite file `STANDALONE_DB` (the real binary, a real file written by the ledger's own
//! writer), in the order written, from `--since`; a missing file or neither setting is a
//! usage error (exit 2), never an empty export from a new file.

use fleet_ledger::{AuditEntry, AuditKind};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

fn export(db: Option<&Path>, since: &str) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"));
    command
        .arg("audit-export")
        .env_remove("DATABASE_URL")
        .env_remove("STANDALONE_DB")
        .env_remove("AMQP_URL");
    if let Some(db) = db {
        command.env("STANDALONE_DB", db);
    }
    if !since.is_empty() {
        command.args(["--since", since]);
    }
    command.output().expect("ingest audit-export runs")
}

#[tokio::test]
async fn the_audit_export_reads_standalone_s_sqlite_ledger() {
    let dir = std::env::temp_dir().join(format!("audit-export-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("standalone.db");
    let db = fleet_ledger::sqlite::SqliteLedger::open(&path)
        .await
        .expect("ledger");
    let ledger = fleet_ledger::start_sqlite(db, 16, &prometheus::Registry::new());
    ledger.audit(AuditEntry::now(
        AuditKind::Trigger,
        Some("github:one"),
        Some("dev1"),
        json!({"event": "issues.labeled"}),
    ));
    ledger.audit(AuditEntry::now(
        AuditKind::Cancel,
        Some("github:one"),
        Some("alice"),
        json!({"cancel_id": "api:x"}),
    ));
    assert!(ledger.flush(Duration::from_secs(10)).await, "written");

    let output = export(Some(&path), "");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON entry per line"))
        .collect();
    let kinds: Vec<&str> = lines.iter().filter_map(|l| l["kind"].as_str()).collect();
    assert_eq!(kinds, ["trigger", "cancel"], "in order: {lines:?}");
    assert_eq!(lines[1]["actor"], "alice");
    assert_eq!(lines[1]["task_id"], "github:one");
    assert!(stderr.contains("2 entries"), "{stderr}");

    let later = export(Some(&path), "2999-01-01T00:00:00Z");
    assert!(later.status.success());
    assert!(later.stdout.is_empty(), "nothing after --since");

    let missing = dir.join("nothing.db");
    assert_eq!(export(Some(&missing), "").status.code(), Some(2));
    assert!(!missing.exists(), "no empty ledger made at a wrong path");
    assert_eq!(export(None, "").status.code(), Some(2), "neither setting");
    let _ = std::fs::remove_dir_all(&dir);
}
