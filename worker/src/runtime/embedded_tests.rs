//! Unit tests of the embedded queue (`embedded.rs`): leases, settles, the delivery limit,
//! recovery after a restart, dead letters handed over, delayed retries.

use super::*;

#[tokio::test]
async fn lease_settle_limit_and_recovery() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("q.db");
    let q = EmbeddedQueue::open(&path, "tasks", 1).expect("open");
    q.publish(b"a".to_vec(), "a".into()).await.expect("publish");
    q.publish(b"b".to_vec(), "b".into()).await.expect("publish");

    let a = q.lease().await.expect("lease").expect("a");
    assert_eq!((a.body.as_slice(), a.delivery_count), (b"a".as_slice(), 0));
    assert!(a.settle(Settle::Requeue).await.expect("requeue"));
    assert!(
        !a.settle(Settle::Ack).await.expect("second settle"),
        "never settled twice"
    );
    let b = q.lease().await.expect("lease").expect("b");
    assert!(b.settle(Settle::Ack).await.expect("ack"));
    let a = q.lease().await.expect("lease").expect("a again");
    assert_eq!(a.delivery_count, 1);
    assert!(a.settle(Settle::Requeue).await.expect("requeue"));
    assert_eq!(
        q.depth().await.expect("depth"),
        Depth {
            ready: 0,
            leased: 0,
            dead: 1
        }
    );
    assert_eq!(
        q.dead_letters().await.expect("dead")[0].reason,
        "delivery_limit"
    );

    q.publish(b"c".to_vec(), "c".into()).await.expect("publish");
    let c = q.lease().await.expect("lease").expect("c");
    assert!(c.settle(Settle::Reject).await.expect("reject"));
    assert_eq!(q.dead_letters().await.expect("dead")[1].reason, "rejected");

    // A lease held when the process dies comes back, counted, after a restart.
    q.publish(b"d".to_vec(), "d".into()).await.expect("publish");
    let _held = q.lease().await.expect("lease").expect("d");
    drop(q);
    let reopened = EmbeddedQueue::open(&path, "tasks", 5).expect("reopen");
    let d = reopened
        .lease()
        .await
        .expect("lease")
        .expect("d after restart");
    assert_eq!((d.body.as_slice(), d.delivery_count), (b"d".as_slice(), 1));
}

#[tokio::test]
async fn dead_letters_are_handed_to_the_ledger_removed_and_republished() {
    let dir = tempfile::tempdir().expect("tmp");
    let q = EmbeddedQueue::open(&dir.path().join("q.db"), "tasks", 1).expect("open");
    q.publish(br#"{"task_id":"github:x"}"#.to_vec(), "github:x".into())
        .await
        .expect("publish");
    let x = q.lease().await.expect("lease").expect("x");
    assert!(x.settle(Settle::Reject).await.expect("reject"));
    let dead = DeadLetterQueue::dead(&q, 10).await.expect("dead");
    assert_eq!(dead.len(), 1);
    let (handle, letter) = &dead[0];
    assert_eq!(letter.message_id, "github:x");
    assert_eq!(letter.task_id.as_deref(), Some("github:x"));
    assert_eq!(letter.reason, "rejected");
    assert_eq!(letter.history[0]["queue"], "tasks");
    assert!(letter.first_death_at.is_some());
    q.remove(*handle).await.expect("remove");
    assert!(
        DeadLetterQueue::dead(&q, 10)
            .await
            .expect("dead")
            .is_empty()
    );
    assert_eq!(q.depth().await.expect("depth").dead, 0);
    q.republish(&letter.body, &letter.message_id)
        .await
        .expect("republish");
    let again = q.lease().await.expect("lease").expect("replayed");
    assert_eq!(
        (again.message_id.as_str(), again.delivery_count),
        ("github:x", 0)
    );
}

#[tokio::test]
async fn a_delayed_message_waits_uncounted_for_its_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let q = EmbeddedQueue::open(&dir.path().join("q.db"), "tasks", 1).expect("open");
    q.publish(b"a".to_vec(), "a".into()).await.expect("publish");
    let a = q.lease().await.expect("lease").expect("a");
    let wait = WaitState {
        waits: 1,
        waited_ms: 300,
        not_before_ms: now() + 300,
        attempts: 0,
    };
    assert!(a.settle(Settle::Delay(wait)).await.expect("delay"));
    assert!(
        q.lease().await.expect("lease").is_none(),
        "not before its time"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let a = q.lease().await.expect("lease").expect("due");
    assert_eq!(a.delivery_count, 0, "a wait is not a delivery");
    assert_eq!((a.wait.waits, a.wait.waited_ms), (1, 300));
}

#[tokio::test]
async fn control_messages_go_to_the_cancels_queue_and_outlive_a_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("q.db");
    let q = EmbeddedQueue::open(&path, "tasks", 1).expect("open");
    let cancel = ControlMessage::from_slice(
        serde_json::json!({
            "type": "cancel", "issue_key": "a/b#1", "requested_by": "dev1",
            "cancel_id": "api:1", "requested_at": "2026-12-03T10:00:00Z", "source": "github",
            "repo_url": "https://github.com/a/b",
            "issue": {"tracker": "github", "key": "a/b#1", "number": 1, "title": "t",
                      "url": "https://github.com/a/b/issues/1"}
        })
        .to_string()
        .as_bytes(),
    )
    .expect("cancel");
    TaskSink::publish_control(&q, &cancel)
        .await
        .expect("queued");
    assert!(q.lease().await.expect("lease").is_none(), "not a task");
    let _held = q
        .cancels()
        .lease()
        .await
        .expect("lease")
        .expect("the cancel");
    drop(q);
    let reopened = EmbeddedQueue::open(&path, "tasks", 5).expect("reopen");
    let again = reopened
        .cancels()
        .lease()
        .await
        .expect("lease")
        .expect("back");
    assert_eq!(again.message_id, "api:1");
    assert_eq!(
        ControlMessage::from_slice(&again.body).expect("body"),
        cancel
    );
    assert!(again.settle(Settle::Ack).await.expect("ack"));
    assert_eq!(reopened.depth().await.expect("depth").ready, 0);
}
