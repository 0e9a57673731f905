-- An idempotency key is taken before the handler runs (`in_flight`, with a lease) and completed
-- in the handler's own transaction with the response it answered. A concurrent request with the
-- same key sees the lease and is refused; an abandoned lease (the process died) lapses.
ALTER TABLE idempotency_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'completed';
ALTER TABLE idempotency_keys ADD COLUMN lease_token TEXT;
ALTER TABLE idempotency_keys ADD COLUMN locked_until BIGINT;
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);
