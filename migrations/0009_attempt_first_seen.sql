-- The block at which the relayer's monitor first saw each broadcast attempt unmined: the start
-- of its replacement countdown, kept across restarts.

ALTER TABLE relayer_attempts ADD COLUMN first_seen_block BIGINT;
