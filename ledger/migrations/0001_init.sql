-- The task ledger, version 1. Applied once, in a transaction, by whichever service starts
-- first (an advisory lock keeps two from racing).

-- One row per task: the projection the operator API and the console read. Written only
-- by applying events (src/writer.rs), so it can be rebuilt from `events`.
CREATE TABLE tasks (
    task_id       text PRIMARY KEY,
    tracker       text NOT NULL DEFAULT '',
    issue_key     text NOT NULL DEFAULT '',
    issue_url     text NOT NULL DEFAULT '',
    repo_url      text NOT NULL DEFAULT '',
    mode          text NOT NULL DEFAULT '',
    trigger_user  text NOT NULL DEFAULT '',
    state         text NOT NULL DEFAULT 'queued',
    phase         text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    llm_calls     integer NOT NULL DEFAULT 0,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    cost_usd      double precision NOT NULL DEFAULT 0,
    checks        jsonb NOT NULL DEFAULT '[]',
    pr_url        text,
    error         text
);
CREATE INDEX tasks_state ON tasks (state, updated_at DESC);
CREATE INDEX tasks_user_day ON tasks (trigger_user, created_at);

-- Every event of every task, in the order it happened. `event_id` makes a write that is
-- retried after an outage land once.
CREATE TABLE events (
    id        bigserial PRIMARY KEY,
    event_id  uuid NOT NULL UNIQUE,
    task_id   text NOT NULL,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_task ON events (task_id, at);

-- The audit trail: who triggered, permission decisions, approvals, every effect. Append
-- only: the trigger below refuses updates and deletes, whoever asks.
CREATE TABLE audit (
    id        bigserial PRIMARY KEY,
    event_id  uuid NOT NULL UNIQUE,
    at        timestamptz NOT NULL,
    kind      text NOT NULL,
    task_id   text,
    actor     text,
    detail    jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_at ON audit (at);

CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH ROW EXECUTE FUNCTION audit_is_append_only();

-- Tasks holding a quota slot. A slot is taken in one transaction under advisory locks
-- (src/quota.rs) and kept alive by its worker; a slot whose lease ran out (a killed
-- worker) no longer counts.
CREATE TABLE running (
    task_id      text PRIMARY KEY,
    trigger_user text NOT NULL,
    repo         text NOT NULL,
    since        timestamptz NOT NULL DEFAULT now(),
    lease_until  timestamptz NOT NULL
);
CREATE INDEX running_user ON running (trigger_user);
CREATE INDEX running_repo ON running (repo);

-- Admissions per user and day (MAX_TASKS_PER_USER_PER_DAY), counted when a slot is taken.
CREATE TABLE admissions (
    task_id      text PRIMARY KEY,
    trigger_user text NOT NULL,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admissions_user_day ON admissions (trigger_user, at);
