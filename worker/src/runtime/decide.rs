//! The settle rules: how a run ended ([`RunEnd`]) and what the delivery depends on besides
//! ([`Rules`]: the last attempt, the waits taken) turned into the one settle it gets, with
//! the labels it is logged and counted under (docs/contracts.md, "Settling a delivery").
//! Pure: the table of the README's "Worker runtime" section, tested without a broker.

use super::handler::TaskError;
use fleet_ledger::notify::Notification;
use fleet_ledger::{EventKind, Outcome, Tally};
use shared::TaskMessage;
use shared::control::ControlMessage;
use shared::queue::Settle;
use shared::queue::{WaitLimits, WaitState};

/// How a run ended, before it is turned into a settle.
#[derive(Debug)]
pub(super) enum RunEnd {
    Finished(Result<(), TaskError>),
    TimedOut,
    Panicked,
    Interrupted,
    NoWorkdir(String),
    /// Stopped by a `/cancel` of its issue: while it ran (`ran`), or before it started (a
    /// cancel this process saw after the task was asked for).
    Cancelled {
        cancel: std::sync::Arc<ControlMessage>,
        ran: bool,
    },
}

/// The settle a run ends in, with the labels it is logged and counted under.
pub(super) struct Decision {
    pub(super) settle: Settle,
    pub(super) outcome: &'static str,
    pub(super) reason: Option<String>,
    pub(super) report_exhausted: bool,
}

/// What the settle of a run depends on besides how it ended.
pub(super) struct Rules {
    pub(super) last_attempt: bool,
    pub(super) timeout_secs: u64,
    /// Failed deliveries were carried over from an earlier copy (a delayed retry): the
    /// broker's own count is behind, so the last attempt is dead-lettered by a reject.
    pub(super) carried: bool,
    pub(super) wait: WaitState,
    /// This copy's failed deliveries (`x-delivery-count`).
    pub(super) failed: u32,
    pub(super) limits: WaitLimits,
    pub(super) now_ms: i64,
}

impl Decision {
    /// The ledger's word on how the run ended: finished (done, failed), waiting (a
    /// delayed retry), dead-lettered (exhausted, rejected) or cancelled (`by` whom, when
    /// known). A run retried at once (a transient failure before the last attempt, an
    /// interrupted one) has none: its next `started` says it.
    pub(super) fn ledger_event(&self, cancelled_by: Option<String>) -> Option<EventKind> {
        let reason = self.reason.clone();
        Some(match self.outcome {
            "done" => EventKind::Finished {
                outcome: Outcome::Done,
                pr_url: None,
                error: None,
            },
            "failed" => EventKind::Finished {
                outcome: Outcome::Failed,
                pr_url: None,
                error: reason,
            },
            "delayed" => EventKind::Waiting {
                reason: reason.unwrap_or_default(),
            },
            "exhausted" | "rejected" => EventKind::DeadLettered {
                reason: reason.unwrap_or_default(),
            },
            "cancelled" => EventKind::Cancelled {
                by: cancelled_by.or(reason).unwrap_or_default(),
            },
            _ => return None,
        })
    }
}

impl Decision {
    /// What `NOTIFY_URL` is told of a task that ended: done (`task.finished`), failed or
    /// given up (`task.failed`), cancelled (`task.cancelled`); nothing while it is retried
    /// or waits. `tally` is what its events added up to (cost, PR).
    pub(super) fn notification(&self, task: &TaskMessage, tally: &Tally) -> Option<Notification> {
        let kind = match self.outcome {
            "done" => "task.finished",
            "failed" | "exhausted" | "rejected" => "task.failed",
            "cancelled" => "task.cancelled",
            _ => return None,
        };
        Some(Notification {
            kind,
            task_id: task.task_id.clone(),
            issue_key: task.issue.key.clone(),
            issue_url: task.issue.url.clone(),
            repo_url: task.repo_url.to_string(),
            mode: task.mode.to_string(),
            outcome: self.outcome.to_owned(),
            pr_url: tally.pr_url.clone(),
            cost_usd: tally.cost_usd,
            error: if self.outcome == "done" {
                None
            } else {
                self.reason.clone()
            },
        })
    }
}

pub(super) fn decide(end: RunEnd, rules: &Rules) -> Decision {
    let last_attempt = rules.last_attempt;
    let retry = |outcome: &'static str, reason: String| Decision {
        settle: if last_attempt && rules.carried {
            Settle::Reject
        } else {
            Settle::Requeue
        },
        outcome: if last_attempt { "exhausted" } else { outcome },
        report_exhausted: last_attempt,
        reason: Some(reason),
    };
    match end {
        RunEnd::Finished(Ok(())) => Decision {
            settle: Settle::Ack,
            outcome: "done",
            reason: None,
            report_exhausted: false,
        },
        RunEnd::Finished(Err(TaskError::Permanent(reason))) => Decision {
            settle: Settle::Ack,
            outcome: "failed",
            reason: Some(reason),
            report_exhausted: false,
        },
        RunEnd::Finished(Err(TaskError::Cancelled(reason))) => cancelled(reason),
        RunEnd::Cancelled { cancel, ran } => cancelled(format!(
            "cancelled by {} {}",
            cancel.requested_by,
            if ran {
                "while it ran"
            } else {
                "before it started"
            }
        )),
        RunEnd::Finished(Err(TaskError::Unsupported(reason))) => Decision {
            settle: Settle::Reject,
            outcome: "rejected",
            reason: Some(reason),
            report_exhausted: false,
        },
        RunEnd::Finished(Err(TaskError::QuotaWait { reason, after })) => {
            // Waiting for a quota is no failure: no bound on how often or how long.
            let unbounded = WaitLimits {
                max_waits: u32::MAX,
                max_total: std::time::Duration::MAX,
            };
            match rules
                .wait
                .next(after, rules.failed, &unbounded, rules.now_ms)
            {
                Some(state) => Decision {
                    settle: Settle::Delay(state),
                    outcome: "delayed",
                    reason: Some(reason),
                    report_exhausted: false,
                },
                None => retry("retry", reason),
            }
        }
        RunEnd::Finished(Err(TaskError::Delayed { reason, after })) => {
            match rules
                .wait
                .next(after, rules.failed, &rules.limits, rules.now_ms)
            {
                Some(state) => Decision {
                    settle: Settle::Delay(state),
                    outcome: "delayed",
                    reason: Some(reason),
                    report_exhausted: false,
                },
                None => retry(
                    "retry",
                    format!(
                        "{reason} (no more waiting after {} delayed retries)",
                        rules.wait.waits
                    ),
                ),
            }
        }
        RunEnd::Finished(Err(TaskError::Transient(reason))) => retry("retry", reason),
        RunEnd::NoWorkdir(reason) => retry("retry", reason),
        RunEnd::TimedOut => retry(
            "timeout",
            format!("timed out after {} s", rules.timeout_secs),
        ),
        RunEnd::Panicked => retry("panic", "the handler panicked".to_owned()),
        // Shutdown ran out of grace: not the task's fault, so no report and no exhaustion.
        RunEnd::Interrupted => Decision {
            settle: Settle::Requeue,
            outcome: "interrupted",
            reason: Some("the worker stopped before the task finished".to_owned()),
            report_exhausted: false,
        },
    }
}

/// A cancelled task is done with: acked, never retried nor dead-lettered.
fn cancelled(reason: String) -> Decision {
    Decision {
        settle: Settle::Ack,
        outcome: "cancelled",
        reason: Some(reason),
        report_exhausted: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rules(last_attempt: bool) -> Rules {
        Rules {
            last_attempt,
            timeout_secs: 1,
            carried: false,
            wait: WaitState::default(),
            failed: 0,
            limits: WaitLimits {
                max_waits: 2,
                max_total: Duration::from_secs(600),
            },
            now_ms: 1_000,
        }
    }

    #[test]
    fn a_quota_wait_is_never_bounded_like_other_waits() {
        let mut tired = rules(false);
        // Past both TASK_MAX_WAITS and TASK_MAX_WAIT_SECS already.
        tired.wait = WaitState {
            waits: 5,
            waited_ms: 3_600_000,
            ..WaitState::default()
        };
        let after = Duration::from_secs(60);
        let quota = decide(
            RunEnd::Finished(Err(TaskError::QuotaWait {
                reason: "MAX_RUNNING_PER_USER".into(),
                after,
            })),
            &tired,
        );
        assert!(matches!(quota.settle, Settle::Delay(_)), "still waits");
        assert_eq!(quota.outcome, "delayed");
        let lock = decide(
            RunEnd::Finished(Err(TaskError::Delayed {
                reason: "locked".into(),
                after,
            })),
            &tired,
        );
        assert!(
            !matches!(lock.settle, Settle::Delay(_)),
            "other waits stay bounded"
        );
    }

    #[test]
    fn settle_rules() {
        let d = decide(RunEnd::Finished(Ok(())), &rules(false));
        assert_eq!((d.settle, d.outcome), (Settle::Ack, "done"));
        let d = decide(
            RunEnd::Finished(Err(TaskError::Permanent("x".into()))),
            &rules(true),
        );
        assert_eq!((d.settle, d.report_exhausted), (Settle::Ack, false));
        let d = decide(
            RunEnd::Finished(Err(TaskError::Unsupported("x".into()))),
            &rules(false),
        );
        assert_eq!(d.settle, Settle::Reject);
        let d = decide(
            RunEnd::Finished(Err(TaskError::Transient("x".into()))),
            &rules(false),
        );
        assert_eq!(
            (d.settle, d.outcome, d.report_exhausted),
            (Settle::Requeue, "retry", false)
        );
        let d = decide(RunEnd::TimedOut, &rules(true));
        assert_eq!(
            (d.settle, d.outcome, d.report_exhausted),
            (Settle::Requeue, "exhausted", true)
        );
        let d = decide(RunEnd::Panicked, &rules(false));
        assert_eq!((d.settle, d.outcome), (Settle::Requeue, "panic"));
        let d = decide(RunEnd::Interrupted, &rules(true));
        assert_eq!((d.settle, d.report_exhausted), (Settle::Requeue, false));
        let d = decide(
            RunEnd::Finished(Err(TaskError::Cancelled("x".into()))),
            &rules(true),
        );
        assert_eq!(
            (d.settle, d.outcome, d.report_exhausted),
            (Settle::Ack, "cancelled", false),
            "a cancel on the last attempt is not dead-lettered"
        );
    }

    #[test]
    fn ended_tasks_are_notified_and_retried_ones_are_not() {
        let task = testkit::TaskBuilder::github("t-9").build();
        let tally = Tally {
            cost_usd: 0.5,
            pr_url: Some("https://github.com/o/r/pull/3".into()),
        };
        let kind = |end: RunEnd, last: bool| {
            decide(end, &rules(last))
                .notification(&task, &tally)
                .map(|n| n.kind)
        };
        assert_eq!(kind(RunEnd::Finished(Ok(())), false), Some("task.finished"));
        let failed = RunEnd::Finished(Err(TaskError::Permanent("no".into())));
        assert_eq!(kind(failed, false), Some("task.failed"));
        assert_eq!(
            kind(RunEnd::TimedOut, true),
            Some("task.failed"),
            "given up"
        );
        let cancelled = RunEnd::Finished(Err(TaskError::Cancelled("by @a".into())));
        assert_eq!(kind(cancelled, false), Some("task.cancelled"));
        assert_eq!(kind(RunEnd::TimedOut, false), None, "retried");
        assert_eq!(kind(RunEnd::Interrupted, true), None);
        let delayed = RunEnd::Finished(Err(TaskError::Delayed {
            reason: "quota".into(),
            after: Duration::from_secs(5),
        }));
        assert_eq!(kind(delayed, false), None, "waiting");
        let done = decide(RunEnd::Finished(Ok(())), &rules(false))
            .notification(&task, &tally)
            .expect("done");
        assert_eq!(
            (
                done.task_id.as_str(),
                done.pr_url,
                done.cost_usd,
                done.error
            ),
            ("t-9", tally.pr_url.clone(), 0.5, None)
        );
    }

    #[test]
    fn settles_tell_the_ledger_how_the_run_ended() {
        let event = |end: RunEnd, last: bool| decide(end, &rules(last)).ledger_event(None);
        assert!(matches!(
            event(RunEnd::Finished(Ok(())), false),
            Some(EventKind::Finished {
                outcome: Outcome::Done,
                ..
            })
        ));
        assert!(matches!(
            event(RunEnd::Finished(Err(TaskError::Permanent("no".into()))), false),
            Some(EventKind::Finished { outcome: Outcome::Failed, error: Some(e), .. }) if e == "no"
        ));
        let delayed = RunEnd::Finished(Err(TaskError::Delayed {
            reason: "quota".into(),
            after: Duration::from_secs(5),
        }));
        assert!(matches!(
            event(delayed, false),
            Some(EventKind::Waiting { reason }) if reason == "quota"
        ));
        assert!(matches!(
            event(RunEnd::TimedOut, true),
            Some(EventKind::DeadLettered { .. })
        ));
        assert!(matches!(
            event(
                RunEnd::Finished(Err(TaskError::Unsupported("x".into()))),
                false
            ),
            Some(EventKind::DeadLettered { .. })
        ));
        assert_eq!(event(RunEnd::TimedOut, false), None, "retried at once");
        assert_eq!(event(RunEnd::Interrupted, true), None);
        let cancelled = decide(
            RunEnd::Finished(Err(TaskError::Cancelled("x".into()))),
            &rules(false),
        );
        assert!(matches!(
            cancelled.ledger_event(Some("alice".into())),
            Some(EventKind::Cancelled { by }) if by == "alice"
        ));
    }

    #[test]
    fn delayed_retries_are_bounded_and_carry_the_attempts() {
        let delayed = || {
            RunEnd::Finished(Err(TaskError::Delayed {
                reason: "rate limit".into(),
                after: Duration::from_secs(90),
            }))
        };
        let mut r = rules(true);
        r.failed = 3;
        let d = decide(delayed(), &r);
        let Settle::Delay(state) = d.settle else {
            panic!("a delay, even on the last attempt: {:?}", d.settle)
        };
        assert_eq!((d.outcome, d.report_exhausted), ("delayed", false));
        assert_eq!((state.waits, state.attempts), (1, 3));
        assert_eq!(state.not_before_ms, 91_000);
        r.wait.waits = 2;
        r.carried = true;
        let d = decide(delayed(), &r);
        assert_eq!(
            (d.settle, d.outcome, d.report_exhausted),
            (Settle::Reject, "exhausted", true),
            "waits spent on the last attempt: dead-lettered and reported"
        );
    }
}
