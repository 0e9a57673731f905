-- Keeps `hold_buckets` in step with `reservations`: every insert adds its counted cents to its
-- quarter hour, every change moves them (a capture, a release, an approval that counts it anew).
CREATE TRIGGER reservations_bucket_insert AFTER INSERT ON reservations
WHEN NEW.counted_cents <> 0
BEGIN
    INSERT INTO hold_buckets (agent_id, bucket, cents)
    VALUES (NEW.agent_id, NEW.counted_at / 900, NEW.counted_cents)
    ON CONFLICT (agent_id, bucket) DO UPDATE SET cents = hold_buckets.cents + excluded.cents;
END;

CREATE TRIGGER reservations_bucket_update AFTER UPDATE OF counted_cents, counted_at ON reservations
WHEN NEW.counted_cents <> OLD.counted_cents OR NEW.counted_at <> OLD.counted_at
BEGIN
    INSERT INTO hold_buckets (agent_id, bucket, cents)
    VALUES (OLD.agent_id, OLD.counted_at / 900, -OLD.counted_cents)
    ON CONFLICT (agent_id, bucket) DO UPDATE SET cents = hold_buckets.cents + excluded.cents;
    INSERT INTO hold_buckets (agent_id, bucket, cents)
    VALUES (NEW.agent_id, NEW.counted_at / 900, NEW.counted_cents)
    ON CONFLICT (agent_id, bucket) DO UPDATE SET cents = hold_buckets.cents + excluded.cents;
END;

CREATE TRIGGER reservations_bucket_delete AFTER DELETE ON reservations
BEGIN
    INSERT INTO hold_buckets (agent_id, bucket, cents)
    VALUES (OLD.agent_id, OLD.counted_at / 900, -OLD.counted_cents)
    ON CONFLICT (agent_id, bucket) DO UPDATE SET cents = hold_buckets.cents + excluded.cents;
END;
