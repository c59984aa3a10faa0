//! This process' memory of the tasks it is running or has run without being able to settle.
//!
//! When the broker connection drops mid-task, the task goes on and finishes, but its ack
//! cannot reach the broker, which redelivers the message once the worker reconnects. The
//! redelivery then finds the task here, and is settled with the outcome the first run had
//! instead of doing the work twice. A second delivery of a task that is still running waits
//! for that run rather than racing it on the same issue.

use shared::queue::Settle;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long an unsettled outcome is kept for its redelivery.
const KEEP_UNSETTLED: Duration = Duration::from_secs(3600);

#[derive(Debug)]
enum Entry {
    Running(watch::Receiver<Option<Settle>>),
    Unsettled(Settle, Instant),
}

#[derive(Debug, Clone, Default)]
pub struct LocalRuns(Arc<Mutex<HashMap<String, Entry>>>);

/// What to do with a delivery of a task.
#[derive(Debug)]
pub enum Begin {
    /// Nobody here has it: run it, then call [`RunGuard::finish`].
    Run(RunGuard),
    /// It is running here now: wait for its settle and copy it.
    Wait(watch::Receiver<Option<Settle>>),
    /// It ran here but its settle was lost with the old channel: settle this delivery so.
    Replay(Settle),
}

impl LocalRuns {
    pub fn begin(&self, task_id: &str) -> Begin {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, e| !matches!(e, Entry::Unsettled(_, at) if at.elapsed() > KEEP_UNSETTLED));
        match map.get(task_id) {
            Some(Entry::Running(rx)) => Begin::Wait(rx.clone()),
            Some(Entry::Unsettled(settle, _)) => {
                let settle = *settle;
                map.remove(task_id);
                Begin::Replay(settle)
            }
            None => {
                let (tx, rx) = watch::channel(None);
                map.insert(task_id.to_owned(), Entry::Running(rx));
                Begin::Run(RunGuard {
                    runs: self.clone(),
                    task_id: task_id.to_owned(),
                    tx,
                })
            }
        }
    }
}

/// The running task's slot; finishing it tells any waiting duplicate how to settle.
#[derive(Debug)]
pub struct RunGuard {
    runs: LocalRuns,
    task_id: String,
    tx: watch::Sender<Option<Settle>>,
}

impl RunGuard {
    /// `delivered`: whether this run's own settle reached the broker.
    pub fn finish(self, settle: Settle, delivered: bool) {
        let mut map = self.runs.0.lock().unwrap_or_else(|p| p.into_inner());
        let waiting = self.tx.receiver_count() > 1;
        if delivered || waiting {
            // A waiting duplicate settles the redelivery itself.
            map.remove(&self.task_id);
        } else {
            map.insert(
                self.task_id.clone(),
                Entry::Unsettled(settle, Instant::now()),
            );
        }
        let _ = self.tx.send(Some(settle));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The slot of the first delivery of task `t`, which nobody here has.
    fn first_run(runs: &LocalRuns) -> RunGuard {
        let Begin::Run(guard) = runs.begin("t") else {
            panic!("run")
        };
        guard
    }

    #[tokio::test]
    async fn a_lost_settle_is_replayed_once() {
        let runs = LocalRuns::default();
        let guard = first_run(&runs);
        guard.finish(Settle::Ack, false);
        assert!(matches!(runs.begin("t"), Begin::Replay(Settle::Ack)));
        assert!(matches!(runs.begin("t"), Begin::Run(_)));
    }

    #[tokio::test]
    async fn a_duplicate_waits_for_the_running_task() {
        let runs = LocalRuns::default();
        let guard = first_run(&runs);
        let Begin::Wait(mut rx) = runs.begin("t") else {
            panic!("wait")
        };
        guard.finish(Settle::Ack, false);
        let settle = *rx.wait_for(Option::is_some).await.expect("sent");
        assert_eq!(settle, Some(Settle::Ack));
        assert!(
            matches!(runs.begin("t"), Begin::Run(_)),
            "the waiter settled it"
        );
    }

    #[tokio::test]
    async fn a_settled_task_is_forgotten() {
        let runs = LocalRuns::default();
        let guard = first_run(&runs);
        guard.finish(Settle::Ack, true);
        assert!(matches!(runs.begin("t"), Begin::Run(_)));
    }
}
