-- The task ledger of `worker standalone` in its SQLite file (STANDALONE_DB), version 1: the
-- same tables as the PostgreSQL ledger (migrations/0001_init.sql, 0002_operator.sql), each
-- named `ledger_*` so that they never meet the embedded queue's own `messages`. Times are
-- microseconds since the Unix epoch (UTC), JSON is text.

CREATE TABLE ledger_tasks (
    task_id       TEXT PRIMARY KEY,
    tracker       TEXT NOT NULL DEFAULT '',
    issue_key     TEXT NOT NULL DEFAULT '',
    issue_url     TEXT NOT NULL DEFAULT '',
    repo_url      TEXT NOT NULL DEFAULT '',
    mode          TEXT NOT NULL DEFAULT '',
    trigger_user  TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL DEFAULT 'queued',
    phase         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    llm_calls     INTEGER NOT NULL DEFAULT 0,
    input_tokens  INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd      REAL NOT NULL DEFAULT 0,
    checks        TEXT NOT NULL DEFAULT '[]',
    pr_url        TEXT,
    error         TEXT,
    message       TEXT
);
CREATE INDEX ledger_tasks_state ON ledger_tasks (state, updated_at DESC);
CREATE INDEX ledger_tasks_user_day ON ledger_tasks (trigger_user, created_at);

CREATE TABLE ledger_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id  TEXT NOT NULL UNIQUE,
    task_id   TEXT NOT NULL,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ledger_events_task ON ledger_events (task_id, at);

-- Append only, as in PostgreSQL: the triggers refuse updates and deletes, whoever asks.
CREATE TABLE ledger_audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id  TEXT NOT NULL UNIQUE,
    at        INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    task_id   TEXT,
    actor     TEXT,
    detail    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX ledger_audit_at ON ledger_audit (at);
CREATE TRIGGER ledger_audit_no_update BEFORE UPDATE ON ledger_audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER ledger_audit_no_delete BEFORE DELETE ON ledger_audit
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;

-- Quota slots and admissions (src/sqlite/quota.rs: one BEGIN IMMEDIATE transaction each).
CREATE TABLE ledger_running (
    task_id      TEXT PRIMARY KEY,
    trigger_user TEXT NOT NULL,
    repo         TEXT NOT NULL,
    since        INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL
);
CREATE INDEX ledger_running_user ON ledger_running (trigger_user);
CREATE INDEX ledger_running_repo ON ledger_running (repo);

CREATE TABLE ledger_admissions (
    task_id      TEXT PRIMARY KEY,
    trigger_user TEXT NOT NULL,
    at           INTEGER NOT NULL
);
CREATE INDEX ledger_admissions_user_day ON ledger_admissions (trigger_user, at);

-- Dead letters taken off the embedded queue, with their history (kept after a replay).
CREATE TABLE ledger_dead_letters (
    message_id     TEXT PRIMARY KEY,
    task_id        TEXT,
    body           BLOB NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    count          INTEGER NOT NULL DEFAULT 1,
    first_death_at INTEGER,
    history        TEXT NOT NULL DEFAULT '[]',
    last_death     TEXT NOT NULL DEFAULT '[]',
    taken_at       INTEGER NOT NULL,
    replayed_at    INTEGER,
    replayed_by    TEXT
);
CREATE INDEX ledger_dead_letters_taken ON ledger_dead_letters (taken_at DESC);
