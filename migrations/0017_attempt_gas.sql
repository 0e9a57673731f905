-- What a mined relayer attempt cost: gas used and the effective gas price (wei, decimal text)
-- from its receipt, and when the watcher saw it mined. The operator console charts gas spent per
-- day from these; attempts mined before this migration have none and are left out of the chart.

ALTER TABLE relayer_attempts ADD COLUMN gas_used BIGINT;
ALTER TABLE relayer_attempts ADD COLUMN effective_gas_price TEXT;
ALTER TABLE relayer_attempts ADD COLUMN mined_at BIGINT;
