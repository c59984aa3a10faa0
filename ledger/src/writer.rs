//! The ledger's buffer: services hand records over without waiting ([`Ledger::record`]),
//! one task writes them in batches, and a database outage only makes it keep them and
//! try again with backoff. Never does a task wait for, or fail because of, the ledger.
//!
//! The buffer is bounded (`LEDGER_BUFFER` records, waiting ones and the batch in hand
//! together): past it, new records are dropped and counted, which keeps a long outage
//! from eating the worker's memory. Every failed write counts in
//! `agent_fleet_ledger_errors_total`; the first failure and the recovery are logged once
//! each, not once per retry.

use crate::backend::Store;
use crate::event::{AuditEntry, Event, Record};
use deadpool_postgres::Pool;
use prometheus::{IntCounter, IntGauge, Registry};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Records written per transaction at most.
const BATCH: usize = 256;
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The ledger's metrics, registered once per registry.
#[derive(Debug, Clone)]
pub struct LedgerMetrics {
    pub errors: IntCounter,
    pub dropped: IntCounter,
    pub buffered: IntGauge,
}

impl LedgerMetrics {
    pub fn new(registry: &Registry) -> Self {
        let metrics = Self {
            errors: IntCounter::new(
                "agent_fleet_ledger_errors_total",
                "Failed ledger writes (each retried until the database answers).",
            )
            .expect("metric"),
            dropped: IntCounter::new(
                "agent_fleet_ledger_dropped_total",
                "Ledger records dropped because the buffer was full during an outage.",
            )
            .expect("metric"),
            buffered: IntGauge::new(
                "agent_fleet_ledger_buffered",
                "Ledger records waiting to be written.",
            )
            .expect("metric"),
        };
        for metric in [
            Box::new(metrics.errors.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.dropped.clone()),
            Box::new(metrics.buffered.clone()),
        ] {
            let _ = registry.register(metric);
        }
        metrics
    }
}

/// The handle services record through; cheap to clone.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    sender: mpsc::Sender<Record>,
    metrics: LedgerMetrics,
    submitted: AtomicU64,
    written: Arc<AtomicU64>,
    progress: Arc<Notify>,
}

impl Ledger {
    /// A ledger that records nothing (no `DATABASE_URL`, no SQLite ledger).
    pub fn disabled() -> Self {
        Self { inner: None }
    }

    /// Starts the writer on `pool` with room for `capacity` records.
    pub fn start(pool: Pool, capacity: usize, metrics: LedgerMetrics) -> Self {
        Self::start_on(Store::Postgres(pool), capacity, metrics)
    }

    /// Starts the writer on `store` (PostgreSQL or the SQLite file) with room for
    /// `capacity` records.
    pub fn start_on(store: Store, capacity: usize, metrics: LedgerMetrics) -> Self {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let written = Arc::new(AtomicU64::new(0));
        let progress = Arc::new(Notify::new());
        tokio::spawn(write_loop(
            store,
            receiver,
            metrics.clone(),
            Arc::clone(&written),
            Arc::clone(&progress),
        ));
        Self {
            inner: Some(Arc::new(Inner {
                sender,
                metrics,
                submitted: AtomicU64::new(0),
                written,
                progress,
            })),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    pub fn record(&self, event: Event) {
        self.submit(Record::Event(event));
    }

    pub fn audit(&self, entry: AuditEntry) {
        self.submit(Record::Audit(entry));
    }

    fn submit(&self, record: Record) {
        let Some(inner) = &self.inner else { return };
        match inner.sender.try_send(record) {
            Ok(()) => {
                inner.submitted.fetch_add(1, Ordering::SeqCst);
                inner.metrics.buffered.inc();
            }
            Err(_) => {
                inner.metrics.dropped.inc();
                tracing::warn!("ledger buffer full: a record was dropped");
            }
        }
    }

    /// Waits until everything recorded so far is written, or `timeout` passed (shutdown,
    /// tests). `true` when all was written.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let Some(inner) = &self.inner else {
            return true;
        };
        let target = inner.submitted.load(Ordering::SeqCst);
        let wait = async {
            loop {
                let notified = inner.progress.notified();
                if inner.written.load(Ordering::SeqCst) >= target {
                    return;
                }
                notified.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

async fn write_loop(
    store: Store,
    mut receiver: mpsc::Receiver<Record>,
    metrics: LedgerMetrics,
    written: Arc<AtomicU64>,
    progress: Arc<Notify>,
) {
    let mut batch: Vec<Record> = Vec::with_capacity(BATCH);
    let mut backoff = BACKOFF_FIRST;
    let mut failing = false;
    loop {
        if batch.is_empty() {
            match receiver.recv().await {
                Some(record) => batch.push(record),
                None => return,
            }
        }
        while batch.len() < BATCH {
            match receiver.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        match store.write(&batch).await {
            Ok(()) => {
                if failing {
                    tracing::info!("ledger writes succeed again; catching up");
                    failing = false;
                }
                let n = batch.len() as u64;
                batch.clear();
                metrics.buffered.sub(i64::try_from(n).unwrap_or(i64::MAX));
                written.fetch_add(n, Ordering::SeqCst);
                progress.notify_waiters();
                backoff = BACKOFF_FIRST;
            }
            Err(error) => {
                metrics.errors.inc();
                if !failing {
                    tracing::warn!(%error, buffered = batch.len(), "ledger write failed; keeping the records and retrying");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}
