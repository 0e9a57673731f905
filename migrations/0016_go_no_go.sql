-- The go/no-go evidence packet (docs/go-no-go.md): runs started by the operator, kept so they
-- survive a restart and every instance on one database sees them, and the readiness samples
-- the hosted-health section reports as history.

-- One go/no-go run. `status` is `running` until the packet is written with `complete`;
-- `packet` is the signed packet's JSON, exactly as served and as its digest was taken over.
CREATE TABLE go_no_go_runs (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    status TEXT NOT NULL,
    verdict TEXT,
    packet TEXT,
    started_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX go_no_go_runs_started ON go_no_go_runs (started_at);

-- A `/readyz` result, recorded by the service every few seconds (bounded: old samples are
-- pruned). `checks` is the JSON of the checks as `/readyz` reports them.
CREATE TABLE readiness_samples (
    id TEXT PRIMARY KEY,
    instance TEXT NOT NULL,
    ready BIGINT NOT NULL,
    checks TEXT NOT NULL,
    checked_at_ms BIGINT NOT NULL
);
CREATE INDEX readiness_samples_checked ON readiness_samples (checked_at_ms);
