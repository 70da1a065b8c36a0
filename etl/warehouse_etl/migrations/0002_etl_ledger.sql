-- The batch ledger and the quarantine.

CREATE TABLE etl_runs (
    run_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    batch_id        text NOT NULL,
    batch_dir       text NOT NULL,
    status          text NOT NULL
                    CHECK (status IN ('running', 'loaded', 'rejected', 'failed', 'abandoned')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    duration_seconds numeric(12,3),
    files           jsonb NOT NULL DEFAULT '{}',   -- file -> {sha256, bytes}
    rows_read       bigint,
    rows_loaded     bigint,
    rows_rejected   bigint,
    facts_inserted  bigint,
    table_counts    jsonb,                         -- table -> {read, loaded, rejected}
    quality_score   numeric(5,2),
    quality         jsonb,                         -- the score's components
    timings         jsonb,                         -- phase -> seconds
    error_kind      text,
    error           text,
    loader          jsonb                          -- host, pid, version
);

-- Exactly once: a batch can be recorded as loaded a single time, even if two
-- loaders race (the second one's commit fails here and rolls back its rows).
CREATE UNIQUE INDEX etl_runs_loaded_once ON etl_runs (batch_id) WHERE status = 'loaded';
CREATE INDEX etl_runs_batch ON etl_runs (batch_id, run_id);

CREATE TABLE etl_rejects (
    run_id        bigint NOT NULL REFERENCES etl_runs (run_id),
    batch_id      text NOT NULL,
    table_name    text NOT NULL,
    source_file   text NOT NULL,
    line_no       bigint NOT NULL,
    rule_id       text NOT NULL,          -- first rule the row failed
    column_name   text,
    failed_rules  text[] NOT NULL,        -- every rule the row failed
    record        jsonb NOT NULL,         -- the row as read
    rejected_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX etl_rejects_run ON etl_rejects (run_id, table_name, line_no);
CREATE INDEX etl_rejects_batch ON etl_rejects (batch_id);
