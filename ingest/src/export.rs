//! `ingest audit-export [--since <RFC 3339>]`: the audit trail as JSON lines on stdout, one
//! entry per line in the order it was written, read page by page (a long trail never sits in
//! memory whole). For archiving into a SIEM or object storage. From PostgreSQL
//! (`DATABASE_URL`), or from the SQLite ledger of `worker standalone` (`STANDALONE_DB`).

use chrono::{DateTime, Utc};
use fleet_ledger::Store;
use std::io::Write;

/// Entries read per page.
const PAGE: i64 = 1000;

/// The `--since` of the command's arguments (the epoch when absent).
pub fn since_of(args: &[String]) -> Result<DateTime<Utc>, String> {
    let mut args = args.iter();
    let mut since = DateTime::<Utc>::UNIX_EPOCH;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--since" => {
                let text = args.next().ok_or("--since needs a time (RFC 3339)")?;
                since = DateTime::parse_from_rfc3339(text)
                    .map_err(|e| format!("--since `{text}` is not an RFC 3339 time: {e}"))?
                    .with_timezone(&Utc);
            }
            other => {
                return Err(format!(
                    "unknown argument `{other}` (audit-export [--since <RFC 3339>])"
                ));
            }
        }
    }
    Ok(since)
}

/// Writes every audit entry at or after `since` to `out`; returns how many.
pub async fn audit_jsonl(
    store: &Store,
    since: DateTime<Utc>,
    out: &mut impl Write,
) -> anyhow::Result<u64> {
    let mut after = 0;
    let mut written = 0;
    loop {
        let page = match store {
            Store::Postgres(pool) => {
                fleet_ledger::query::audit_page(pool, since, after, PAGE).await?
            }
            Store::Sqlite(db) => db.audit_page(since, after, PAGE).await?,
        };
        let Some((last, _)) = page.last() else {
            return Ok(written);
        };
        after = *last;
        for (_, entry) in &page {
            serde_json::to_writer(&mut *out, entry)?;
            out.write_all(b"\n")?;
            written += 1;
        }
        out.flush()?;
    }
}
