-- The operator API, version 2: the task message each task was published with (so that
-- `POST /api/v1/tasks/{id}/retry` can publish it again under a new id), and the dead
-- letters taken off `<queue>.dead` with their `x-death` history (kept after a replay).

ALTER TABLE tasks ADD COLUMN message jsonb;

CREATE TABLE dead_letters (
    message_id     text PRIMARY KEY,
    task_id        text,
    body           bytea NOT NULL,
    reason         text NOT NULL DEFAULT '',
    count          bigint NOT NULL DEFAULT 1,
    first_death_at timestamptz,
    -- Every `x-death` header seen for this message, oldest first: a replayed message that
    -- dies again appends its new history instead of losing the old one.
    history        jsonb NOT NULL DEFAULT '[]',
    -- The `x-death` of the latest death: the same delivery seen again (an ack that was
    -- lost) matches it and changes nothing; a new death differs and opens the letter again.
    last_death     jsonb NOT NULL DEFAULT '[]',
    taken_at       timestamptz NOT NULL DEFAULT now(),
    replayed_at    timestamptz,
    replayed_by    text
);
CREATE INDEX dead_letters_open ON dead_letters (taken_at DESC) WHERE replayed_at IS NULL;
