//! Wallet screening before activation: the operator's denylist, then the on-chain sanctions
//! oracle (the Chainalysis interface; its address is configuration).
//!
//! The escrow checks both parties against the oracle again on-chain; screening here refuses a
//! sanctioned party before anything is queued, applies the operator's own list (which the chain
//! knows nothing of), and yields a [`ScreeningReport`] that is stored with the agreement as the
//! record of what was checked, against what, and when.
//!
//! An oracle that cannot be reached or reverts fails closed by default: screening is an error, and
//! nothing is activated unscreened. Fail-open (an operator's explicit choice) records
//! `"oracle": "unavailable"` in the report instead.

pub mod cache;
pub mod denylist;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use alloy::sol;
use serde::{Deserialize, Serialize, Serializer};

use self::denylist::{DenylistError, DenylistFile};
use crate::chain::node_error;
use crate::vocab::string_enum;

sol! {
    /// The Chainalysis sanctions oracle.
    #[sol(rpc)]
    interface ISanctionsOracle {
        /// True when `addr` is on the sanctions list.
        function isSanctioned(address addr) external view returns (bool);
    }
}

/// Why screening could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum ScreeningError {
    /// The denylist file could not be read or has an invalid line.
    #[error(transparent)]
    Denylist(#[from] DenylistError),
    /// The oracle could not be reached, reverted, or gave no answer, and screening fails closed.
    #[error("sanctions oracle unavailable: {0}")]
    Unavailable(String),
}

/// The result type of this module.
pub type Result<T, E = ScreeningError> = std::result::Result<T, E>;

/// How to screen; see [`Screener::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningConfig {
    /// The sanctions oracle; `None` screens with the denylist alone.
    pub oracle: Option<Address>,
    /// The operator's denylist file, if any.
    pub denylist: Option<PathBuf>,
    /// Refuse to screen when the oracle is unavailable (true, the default), or report it and go on.
    pub fail_closed: bool,
}

impl Default for ScreeningConfig {
    fn default() -> Self {
        Self { oracle: None, denylist: None, fail_closed: true }
    }
}

/// Screens wallets against the denylist and the sanctions oracle.
#[derive(Debug)]
pub struct Screener {
    oracle: Option<ISanctionsOracle::ISanctionsOracleInstance<DynProvider>>,
    denylist: Option<DenylistFile>,
    fail_closed: bool,
}

/// What screening found, stored with the agreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreeningReport {
    /// Each wallet screened, in the order given.
    pub wallets: Vec<WalletScreening>,
    /// Whether the oracle answered for every wallet.
    pub oracle: OracleStatus,
    /// When the screening ran, in unix seconds.
    pub checked_at: u64,
}

/// One wallet's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletScreening {
    /// The wallet, checksummed.
    #[serde(serialize_with = "checksummed")]
    pub address: Address,
    /// True when a list has it.
    pub sanctioned: bool,
    /// The list that has it; `null` when none does.
    pub source: Option<ScreeningSource>,
}

string_enum!(
    /// Which list flagged a wallet.
    ScreeningSource {
        /// The operator's denylist (checked first, so it wins when both lists have the wallet).
        Denylist = "denylist",
        /// The sanctions oracle.
        Oracle = "oracle",
    }
);

string_enum!(
    /// What became of the oracle check.
    OracleStatus {
        /// The oracle answered for every wallet.
        Checked = "checked",
        /// The oracle could not answer and screening is fail-open: only the denylist was applied.
        Unavailable = "unavailable",
        /// No oracle is configured.
        NotConfigured = "not_configured",
    }
);

impl ScreeningReport {
    /// The wallets a list has.
    pub fn sanctioned(&self) -> Vec<Address> {
        self.wallets
            .iter()
            .filter(|wallet| wallet.sanctioned)
            .map(|wallet| wallet.address)
            .collect()
    }
}

impl Screener {
    /// A screener asking the oracle through `provider`. The denylist is read now, so a missing
    /// file or an invalid line fails start-up rather than the first activation.
    pub fn new(provider: DynProvider, config: &ScreeningConfig) -> Result<Self> {
        Ok(Self {
            oracle: config.oracle.map(|address| ISanctionsOracle::new(address, provider)),
            denylist: config.denylist.as_ref().map(DenylistFile::open).transpose()?,
            fail_closed: config.fail_closed,
        })
    }

    /// Screens `wallets`: the denylist (re-read if the file changed), then the oracle for every
    /// wallet. An oracle that cannot answer is [`ScreeningError::Unavailable`] when failing
    /// closed, else a report with [`OracleStatus::Unavailable`].
    pub async fn screen(&self, wallets: &[Address]) -> Result<ScreeningReport> {
        let denylist = match &self.denylist {
            Some(file) => Some(file.current().await?),
            None => None,
        };
        let mut report: Vec<WalletScreening> = wallets
            .iter()
            .map(|&address| {
                let listed = denylist.as_ref().is_some_and(|list| list.contains(&address));
                WalletScreening {
                    address,
                    sanctioned: listed,
                    source: listed.then_some(ScreeningSource::Denylist),
                }
            })
            .collect();

        let oracle = match &self.oracle {
            None => OracleStatus::NotConfigured,
            Some(oracle) => match ask_oracle(oracle, wallets).await {
                Ok(flags) => {
                    for (wallet, flagged) in report.iter_mut().zip(flags) {
                        if flagged && !wallet.sanctioned {
                            wallet.sanctioned = true;
                            wallet.source = Some(ScreeningSource::Oracle);
                        }
                    }
                    OracleStatus::Checked
                }
                Err(reason) if self.fail_closed => return Err(ScreeningError::Unavailable(reason)),
                Err(reason) => {
                    tracing::warn!(%reason, "sanctions oracle unavailable; screening fail-open");
                    OracleStatus::Unavailable
                }
            },
        };
        Ok(ScreeningReport { wallets: report, oracle, checked_at: unix_now() })
    }
}

impl Screener {
    /// The lists this screener consults, in the order it consults them.
    pub fn sources(&self) -> Vec<ScreeningSource> {
        let mut sources = Vec::with_capacity(2);
        if self.denylist.is_some() {
            sources.push(ScreeningSource::Denylist);
        }
        if self.oracle.is_some() {
            sources.push(ScreeningSource::Oracle);
        }
        sources
    }

    /// The verdict on one address, which is never "clean" unless every configured list
    /// answered: an oracle that cannot answer is [`ScreeningError::Unavailable`] even when
    /// screening is fail-open, unless the denylist already has the address (a listed address is
    /// listed whatever the oracle would say).
    pub async fn verdict(&self, address: Address) -> Result<cache::Verdict> {
        let report = self.screen(&[address]).await?;
        let wallet = report.wallets.first().cloned().unwrap_or(WalletScreening {
            address,
            sanctioned: false,
            source: None,
        });
        if report.oracle == OracleStatus::Unavailable && !wallet.sanctioned {
            return Err(ScreeningError::Unavailable(
                "the sanctions oracle did not answer; no clean verdict without it".into(),
            ));
        }
        Ok(cache::Verdict {
            address,
            sanctioned: wallet.sanctioned,
            source: wallet.source,
            sources: self.sources(),
            oracle: report.oracle,
            checked_at: report.checked_at,
        })
    }
}

/// The oracle's answer for each wallet, or why there is none.
async fn ask_oracle(
    oracle: &ISanctionsOracle::ISanctionsOracleInstance<DynProvider>,
    wallets: &[Address],
) -> Result<Vec<bool>, String> {
    let mut flags = Vec::with_capacity(wallets.len());
    for &wallet in wallets {
        let flagged = oracle.isSanctioned(wallet).call().await.map_err(|err| match &err {
            // Through the one classifier, so a revert reads as the oracle's own error.
            alloy::contract::Error::TransportError(transport) => {
                node_error::classify(transport).to_string()
            }
            _ => err.to_string(),
        })?;
        flags.push(flagged);
    }
    Ok(flags)
}

fn checksummed<S: Serializer>(address: &Address, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&address.to_checksum(None))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use alloy::primitives::address;

    use super::*;

    #[test]
    fn report_serializes_with_the_documented_vocabulary() {
        let flagged = address!("0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C");
        let report = ScreeningReport {
            wallets: vec![
                WalletScreening {
                    address: flagged,
                    sanctioned: true,
                    source: Some(ScreeningSource::Denylist),
                },
                WalletScreening { address: Address::ZERO, sanctioned: false, source: None },
            ],
            oracle: OracleStatus::NotConfigured,
            checked_at: 1_700_000_000,
        };
        assert_eq!(report.sanctioned(), vec![flagged]);
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({
                "wallets": [
                    {
                        "address": "0x8576aCC5C05D6Ce88f4e49bf65BdF0C62F91353C",
                        "sanctioned": true,
                        "source": "denylist",
                    },
                    {
                        "address": "0x0000000000000000000000000000000000000000",
                        "sanctioned": false,
                        "source": null,
                    },
                ],
                "oracle": "not_configured",
                "checked_at": 1_700_000_000,
            })
        );
        assert_eq!(serde_json::to_value(OracleStatus::Checked).unwrap(), "checked");
        assert_eq!(serde_json::to_value(OracleStatus::Unavailable).unwrap(), "unavailable");
        assert_eq!(serde_json::to_value(ScreeningSource::Oracle).unwrap(), "oracle");
    }

    #[test]
    fn fails_closed_by_default() {
        assert!(ScreeningConfig::default().fail_closed);
    }
}
