-- Keeps `hold_buckets` in step with `reservations`: every insert adds its counted cents to its
-- quarter hour, every change moves them (a capture, a release, an approval that counts it anew).
CREATE FUNCTION pactum_hold_buckets() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF TG_OP = 'UPDATE' AND NEW.counted_cents = OLD.counted_cents
           AND NEW.counted_at = OLD.counted_at THEN
            RETURN NULL;
        END IF;
        INSERT INTO hold_buckets (agent_id, bucket, cents)
        VALUES (OLD.agent_id, OLD.counted_at / 900, -OLD.counted_cents)
        ON CONFLICT (agent_id, bucket) DO UPDATE SET cents = hold_buckets.cents + excluded.cents;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.counted_cents <> 0 THEN
        INSERT INTO hold_buckets (agent_id, bucket, cents)
        VALUES (NEW.agent_id, NEW.counted_at / 900, NEW.counted_cents)
        ON CONFLICT (agent_id, bucket) DO UPDATE SET cents = hold_buckets.cents + excluded.cents;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER reservations_buckets AFTER INSERT OR UPDATE OR DELETE ON reservations
    FOR EACH ROW EXECUTE FUNCTION pactum_hold_buckets();
