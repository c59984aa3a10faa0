//! The fleet's quotas on the worker's side (`MAX_RUNNING_PER_USER`, `MAX_RUNNING_PER_REPO`,
//! `MAX_TASKS_PER_USER_PER_DAY`): a handler asks [`QuotaGate::admit`] once it knows who
//! asked and that they may; over a limit, the task waits (a delayed retry, never a
//! failure). An admitted task's slot is kept alive while it runs and given back by the
//! runtime once the task's end is recorded, so the next task of the user starts after it.
//!
//! The ledger not answering never holds a task back: it runs without a slot, and
//! `agent_fleet_quota_errors_total` counts it.

use fleet_ledger::quota::{Admission, QuotaLimits};
use fleet_ledger::{EventKind, Store, TaskLedger};
use prometheus::{IntCounter, IntCounterVec, Registry};
use shared::telemetry::{counter, counter_vec};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a slot counts without being renewed (a killed worker's slot frees itself).
const LEASE: Duration = Duration::from_secs(60);
/// How often a running task's slot is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How long an admission may take before the task runs anyway.
const ASK_WITHIN: Duration = Duration::from_secs(10);

/// The quotas of this process: the ledger's store (PostgreSQL, or the SQLite file of
/// `worker standalone`; none: no quotas), the limits, the slots held by the tasks running
/// here.
#[derive(Debug)]
pub struct Quotas {
    store: Option<Store>,
    limits: QuotaLimits,
    /// The renewal of each slot held here, by task id.
    slots: Mutex<HashMap<String, JoinHandle<()>>>,
    waits: IntCounterVec,
    errors: IntCounter,
}

/// Why a task waits, in the words of its status comment, and how long at least.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaWait {
    pub reason: String,
    pub after: Duration,
}

impl Quotas {
    /// The quotas on `store` (`None`: every task is admitted), counted in `registry`.
    pub fn new(store: Option<Store>, limits: QuotaLimits, registry: &Registry) -> Self {
        let waits = counter_vec(
            "agent_fleet_quota_waits_total",
            "Tasks that waited (a delayed retry) because a quota was reached, by quota",
            &["quota"],
        );
        let errors = counter(
            "agent_fleet_quota_errors_total",
            "Quota checks the ledger did not answer (the task ran without a slot)",
        );
        let _ = registry.register(Box::new(waits.clone()));
        let _ = registry.register(Box::new(errors.clone()));
        Self {
            store,
            limits,
            slots: Mutex::default(),
            waits,
            errors,
        }
    }

    /// Gives back the slot of `task_id`, if it holds one here (the task ended, in any way).
    /// In the background: the settle never waits for the ledger; a slot that could not be
    /// given back frees itself when its lease runs out.
    pub fn release(self: &Arc<Self>, task_id: &str) {
        let renewal = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(task_id);
        let (Some(renewal), Some(store)) = (renewal, self.store.clone()) else {
            return;
        };
        renewal.abort();
        let (quotas, task_id) = (Arc::clone(self), task_id.to_owned());
        tokio::spawn(async move {
            match tokio::time::timeout(ASK_WITHIN, store.release(&task_id)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    quotas.errors.inc();
                    tracing::warn!(%error, "cannot give the quota slot back; its lease will run out");
                }
                Err(_) => {
                    quotas.errors.inc();
                    tracing::warn!(
                        "giving the quota slot back took too long; its lease will run out"
                    );
                }
            }
        });
    }
}

/// One task's way to its quota slot (handed to the handler in its context).
#[derive(Debug, Clone)]
pub struct QuotaGate {
    quotas: Arc<Quotas>,
    ledger: TaskLedger,
    /// Delayed retries the task already took (its wait grows with them).
    waits: u32,
}

impl QuotaGate {
    pub fn new(quotas: Arc<Quotas>, ledger: TaskLedger, waits: u32) -> Self {
        Self {
            quotas,
            ledger,
            waits,
        }
    }

    /// A gate that admits everything (`worker run`, tests).
    pub fn open() -> Self {
        let quotas = Quotas::new(None, QuotaLimits::default(), &Registry::new());
        Self::new(Arc::new(quotas), TaskLedger::disabled(), 0)
    }

    /// Takes a slot for the task asked for by `user` in `repo`, or says why it waits. The
    /// ledger not answering admits the task (counted).
    pub async fn admit(&self, user: &str, repo: &str) -> Result<(), QuotaWait> {
        let quotas = &self.quotas;
        let Some(store) = &quotas.store else {
            return Ok(());
        };
        let task_id = self.ledger.task_id();
        let asked = store.admit(task_id, user, repo, quotas.limits, LEASE);
        let admission = match tokio::time::timeout(ASK_WITHIN, asked).await {
            Ok(Ok(admission)) => admission,
            Ok(Err(error)) => {
                quotas.errors.inc();
                tracing::warn!(%error, "the ledger did not answer the quota check; running the task");
                return Ok(());
            }
            Err(_) => {
                quotas.errors.inc();
                tracing::warn!("the quota check took too long; running the task");
                return Ok(());
            }
        };
        if let Some(reason) = admission.describe(user, repo) {
            if let Admission::Wait { quota, .. } = admission {
                quotas.waits.with_label_values(&[quota.setting()]).inc();
            }
            tracing::info!(reason, "over a quota; the task waits");
            return Err(QuotaWait {
                reason,
                after: super::delay::lock_backoff(self.waits),
            });
        }
        self.ledger.event(EventKind::Admitted);
        let (store, id) = (store.clone(), task_id.to_owned());
        let renewal = tokio::spawn(async move {
            loop {
                tokio::time::sleep(RENEW_EVERY).await;
                if let Err(error) = store.renew(&id, LEASE).await {
                    tracing::warn!(%error, "cannot renew the quota slot; trying again");
                }
            }
        });
        let previous = (quotas.slots.lock().unwrap_or_else(|e| e.into_inner()))
            .insert(task_id.to_owned(), renewal);
        if let Some(previous) = previous {
            previous.abort();
        }
        Ok(())
    }
}
