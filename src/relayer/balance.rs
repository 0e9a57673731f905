//! The relayer signers' ETH balances: read every few seconds (never per scrape), kept as gauges
//! in the metrics registry, with a warning when a signer falls below the configured minimum.
//!
//! The warning is logged once per crossing (and an info line when the balance recovers), so a
//! signer that stays low does not flood the logs; the `pactum_relayer_signer_low_balance` gauge
//! says whether it is low right now.

use std::collections::HashMap;
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use tokio::sync::watch;

use crate::metrics;

/// How long one balance read may take before the check moves on.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The periodic check of the relayer signers' balances.
#[derive(Debug, Clone)]
pub struct BalanceMonitor {
    /// A read-only provider.
    pub provider: DynProvider,
    /// The relayer accounts.
    pub signers: Vec<Address>,
    /// Below this many wei a signer is low.
    pub minimum: U256,
    /// Time between checks.
    pub interval: Duration,
}

/// How a signer's balance moved relative to the minimum since the last reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crossing {
    /// It fell below the minimum.
    Dropped,
    /// It is back at or above the minimum.
    Recovered,
    /// Same side as before.
    Unchanged,
}

/// Compares a reading with the previous state (`was_low`); a first reading counts as coming
/// from "not low", so a signer that starts low is warned about once.
pub fn crossing(was_low: bool, balance: U256, minimum: U256) -> Crossing {
    match (was_low, balance < minimum) {
        (false, true) => Crossing::Dropped,
        (true, false) => Crossing::Recovered,
        _ => Crossing::Unchanged,
    }
}

impl BalanceMonitor {
    /// Checks at once, then every `interval`, until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let mut low: HashMap<Address, bool> = HashMap::new();
        loop {
            self.check(&mut low).await;
            tokio::select! {
                _ = shutdown.changed() => return Ok(()),
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
    }

    /// Reads each signer's balance and updates its gauges; a failed read keeps the last ones.
    async fn check(&self, low: &mut HashMap<Address, bool>) {
        for signer in &self.signers {
            let read = tokio::time::timeout(READ_TIMEOUT, self.provider.get_balance(*signer));
            let balance = match read.await {
                Ok(Ok(balance)) => balance,
                Ok(Err(error)) => {
                    tracing::warn!(%signer, %error, "signer balance could not be read");
                    continue;
                }
                Err(_) => {
                    tracing::warn!(%signer, "signer balance read timed out");
                    continue;
                }
            };
            let label = signer.to_checksum(None);
            let wei = balance.to_string().parse::<f64>().unwrap_or(f64::INFINITY);
            let is_low = balance < self.minimum;
            let registry = metrics::registry();
            registry.set("pactum_relayer_signer_balance_wei", &[("signer", &label)], wei);
            registry.set(
                "pactum_relayer_signer_low_balance",
                &[("signer", &label)],
                if is_low { 1.0 } else { 0.0 },
            );
            let was_low = low.insert(*signer, is_low).unwrap_or(false);
            match crossing(was_low, balance, self.minimum) {
                Crossing::Dropped => tracing::warn!(
                    signer = %label,
                    balance_wei = %balance,
                    minimum_wei = %self.minimum,
                    "relayer signer balance is below the minimum; fund it"
                ),
                Crossing::Recovered => tracing::info!(
                    signer = %label,
                    balance_wei = %balance,
                    "relayer signer balance is back above the minimum"
                ),
                Crossing::Unchanged => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warns_once_per_crossing() {
        let minimum = U256::from(100);
        assert_eq!(crossing(false, U256::from(99), minimum), Crossing::Dropped);
        assert_eq!(crossing(true, U256::from(50), minimum), Crossing::Unchanged);
        assert_eq!(crossing(true, U256::from(100), minimum), Crossing::Recovered);
        assert_eq!(crossing(false, U256::from(500), minimum), Crossing::Unchanged);
    }
}
