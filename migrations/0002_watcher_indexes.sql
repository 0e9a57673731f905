-- Indexes for the chain watcher's per-pass queries, which otherwise scan whole tables once a poll
-- interval, holding the (single, on SQLite) writer while they do: the expiry sweep over agreements
-- (`agreements::expire_due`) and the read of unapplied escrow events (`chain::unapplied_events`).
-- With them, a pass costs the same on 100 agreements as on 100,000 (docs/benchmarks.md).

CREATE INDEX agreements_by_expiry ON usage_agreements (status, activate_by);
CREATE INDEX escrow_events_unapplied ON escrow_events (applied, block_number, log_index);
