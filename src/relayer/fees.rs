//! EIP-1559 fee maths for the relayer, free of I/O: the market price from one `eth_feeHistory`
//! reply, the fees of a new transaction, the bump of a replacement, and the cap above which the
//! relayer waits instead of paying.
//!
//! - market: the next block's base fee (the last entry of `baseFeePerGas`) and a tip, the median
//!   of the blocks' 50th-percentile rewards, never below [`MIN_TIP`]; or, between fee-history
//!   reads, the bound on the next base fee after the head the watcher read and the last tip
//!   ([`Market::after_head`]);
//! - a new transaction pays `max_fee = 2 × base fee + tip` (room for six full blocks of base-fee
//!   rise), clamped to the cap;
//! - a replacement raises both fields to at least `previous + 10% + 1 wei` (the minimum bump nodes
//!   accept) or to the market, whichever is higher;
//! - when the market itself (`base fee + tip`) or the bumped fee cap is above the cap, nothing is
//!   sent and the job says why ([`Waiting`]).

use std::fmt;

/// Blocks of history read per `eth_feeHistory` call.
pub const HISTORY_BLOCKS: u64 = 5;
/// The reward percentile the tip is taken from.
pub const TIP_PERCENTILE: f64 = 50.0;
/// The least tip offered, in wei (0.001 gwei: Base's usual minimum).
pub const MIN_TIP: u128 = 1_000_000;
/// Wei per gwei.
pub const GWEI: u128 = 1_000_000_000;

/// The two EIP-1559 fee fields of a transaction, in wei.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fees {
    /// `maxFeePerGas`.
    pub max_fee_per_gas: u128,
    /// `maxPriorityFeePerGas`.
    pub max_priority_fee_per_gas: u128,
}

/// What the network asks for the next block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Market {
    /// The next block's base fee, wei.
    pub base_fee: u128,
    /// The tip to offer, wei.
    pub tip: u128,
}

/// Why a transaction is not sent: its fees would be above the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// The market (`base fee + tip`) alone is above the cap.
    Market {
        /// `base fee + tip`, wei.
        market: u128,
        /// The cap, wei.
        cap: u128,
    },
    /// A replacement must raise the fee cap above the cap to be accepted.
    Bump {
        /// The fee cap the replacement needs, wei.
        needed: u128,
        /// The cap, wei.
        cap: u128,
    },
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiting::Market { market, cap } => write!(
                f,
                "waiting for fees: market {} gwei above the cap {} gwei",
                gwei(*market),
                gwei(*cap)
            ),
            Waiting::Bump { needed, cap } => write!(
                f,
                "waiting for fees: a replacement needs {} gwei, above the cap {} gwei",
                gwei(*needed),
                gwei(*cap)
            ),
        }
    }
}

impl Market {
    /// The market from an `eth_feeHistory` reply: `base_fees` has one entry per block read plus
    /// the next block's (the last), `rewards` one row per block with the requested percentiles
    /// (the first column is used). `None` when the reply has no base fee (a pre-London chain).
    pub fn from_history(base_fees: &[u128], rewards: &[Vec<u128>]) -> Option<Market> {
        let base_fee = *base_fees.last()?;
        let mut tips: Vec<u128> = rewards.iter().filter_map(|row| row.first().copied()).collect();
        tips.sort_unstable();
        let median = tips.get(tips.len() / 2).copied().unwrap_or(0);
        Some(Market { base_fee, tip: median.max(MIN_TIP) })
    }

    /// What a transaction must at least offer to be included now: `base fee + tip`.
    pub fn price(&self) -> u128 {
        self.base_fee.saturating_add(self.tip)
    }

    /// The market after the block `head_base_fee` is the base fee of, with `tip`: the next
    /// block's base fee is at most an eighth above its parent's under Ethereum's EIP-1559
    /// parameters, and less under Base's, so that bound stands in for it.
    pub fn after_head(head_base_fee: u128, tip: u128) -> Market {
        Market { base_fee: next_base_fee_bound(head_base_fee), tip: tip.max(MIN_TIP) }
    }

    /// Market fees, uncapped: `2 × base fee + tip`, and the tip.
    pub fn fees(&self) -> Fees {
        Fees {
            max_fee_per_gas: self.base_fee.saturating_mul(2).saturating_add(self.tip),
            max_priority_fee_per_gas: self.tip,
        }
    }
}

/// The fees of a new transaction under `cap` (wei): the market's, with the fee cap clamped to
/// `cap`; [`Waiting::Market`] when the market price is above it.
pub fn new_fees(market: Market, cap: u128) -> Result<Fees, Waiting> {
    if market.price() > cap {
        return Err(Waiting::Market { market: market.price(), cap });
    }
    Ok(clamp(market.fees(), cap))
}

/// The most the base fee of the block after one with `base_fee` can be: `base_fee × 9/8`,
/// rounded up (EIP-1559's largest step; Base's parameters allow less).
pub fn next_base_fee_bound(base_fee: u128) -> u128 {
    base_fee.saturating_add(base_fee.div_ceil(8))
}

/// One fee field raised by the minimum replacement bump: `previous × 1.1`, rounded up, plus
/// one wei (so even a zero tip moves).
pub fn bump_one(previous: u128) -> u128 {
    previous.saturating_add(previous.div_ceil(10)).saturating_add(1)
}

/// Both fields of `previous` bumped ([`bump_one`]) or raised to the market, whichever is
/// higher; the result is never below `previous + 10%` in either field.
pub fn bump(previous: Fees, market: Fees) -> Fees {
    Fees {
        max_fee_per_gas: bump_one(previous.max_fee_per_gas).max(market.max_fee_per_gas),
        max_priority_fee_per_gas: bump_one(previous.max_priority_fee_per_gas)
            .max(market.max_priority_fee_per_gas),
    }
}

/// The fees of a replacement for a transaction that offered `previous`, under `cap` (wei):
/// [`bump`] against the market (its fee cap clamped to `cap`). [`Waiting`] when the market or
/// the minimum bump is above the cap.
pub fn replacement_fees(previous: Fees, market: Market, cap: u128) -> Result<Fees, Waiting> {
    if market.price() > cap {
        return Err(Waiting::Market { market: market.price(), cap });
    }
    let fees = bump(previous, clamp(market.fees(), cap));
    if fees.max_fee_per_gas > cap {
        return Err(Waiting::Bump { needed: fees.max_fee_per_gas, cap });
    }
    Ok(fees)
}

/// `fees` with the fee cap at most `cap` and the tip at most the fee cap.
fn clamp(fees: Fees, cap: u128) -> Fees {
    let max_fee_per_gas = fees.max_fee_per_gas.min(cap);
    Fees {
        max_fee_per_gas,
        max_priority_fee_per_gas: fees.max_priority_fee_per_gas.min(max_fee_per_gas),
    }
}

/// `wei` in gwei for people: up to three decimals, trailing zeros dropped (`52`, `0.001`).
pub fn gwei(wei: u128) -> String {
    let whole = wei / GWEI;
    let thousandths = (wei % GWEI) / 1_000_000;
    if thousandths == 0 {
        return whole.to_string();
    }
    let decimals = format!("{thousandths:03}");
    format!("{whole}.{}", decimals.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn market(base_gwei: u128, tip: u128) -> Market {
        Market { base_fee: base_gwei * GWEI, tip }
    }

    #[test]
    fn the_market_is_the_next_base_fee_and_the_median_tip() {
        let base = [10 * GWEI, 11 * GWEI, 12 * GWEI];
        let rewards = vec![vec![3 * GWEI], vec![GWEI], vec![2 * GWEI]];
        let m = Market::from_history(&base, &rewards).unwrap();
        assert_eq!(m, Market { base_fee: 12 * GWEI, tip: 2 * GWEI });
        assert_eq!(m.fees().max_fee_per_gas, 26 * GWEI);
        assert_eq!(m.fees().max_priority_fee_per_gas, 2 * GWEI);
        assert_eq!(m.price(), 14 * GWEI);
    }

    #[test]
    fn the_market_after_a_head_bounds_the_next_base_fee_from_above() {
        assert_eq!(next_base_fee_bound(8 * GWEI), 9 * GWEI);
        assert_eq!(next_base_fee_bound(9), 11);
        assert_eq!(next_base_fee_bound(0), 0);
        let m = Market::after_head(8 * GWEI, 0);
        assert_eq!(m, Market { base_fee: 9 * GWEI, tip: MIN_TIP });
        // A full parent block raises the base fee by exactly an eighth: the bound holds it.
        let parent = 1_000_000_007u128;
        let full_block_next = parent + parent / 8;
        assert!(next_base_fee_bound(parent) >= full_block_next);
    }

    #[test]
    fn the_tip_has_a_floor_and_an_empty_history_has_no_market() {
        let m = Market::from_history(&[GWEI], &[vec![0], vec![]]).unwrap();
        assert_eq!(m.tip, MIN_TIP);
        let m = Market::from_history(&[GWEI], &[]).unwrap();
        assert_eq!(m.tip, MIN_TIP);
        assert_eq!(Market::from_history(&[], &[]), None);
    }

    #[test]
    fn a_bump_is_at_least_ten_percent_in_both_fields() {
        assert_eq!(bump_one(100), 111);
        assert_eq!(bump_one(101), 113);
        assert_eq!(bump_one(0), 1);
        let previous = Fees { max_fee_per_gas: 20 * GWEI, max_priority_fee_per_gas: GWEI };
        let low = Fees { max_fee_per_gas: GWEI, max_priority_fee_per_gas: 1 };
        let bumped = bump(previous, low);
        assert_eq!(bumped.max_fee_per_gas, 22 * GWEI + 1);
        assert_eq!(bumped.max_priority_fee_per_gas, GWEI + GWEI / 10 + 1);
        assert!(bumped.max_fee_per_gas * 10 >= previous.max_fee_per_gas * 11);
        assert!(bumped.max_priority_fee_per_gas * 10 >= previous.max_priority_fee_per_gas * 11);
    }

    #[test]
    fn a_bump_follows_the_market_when_it_is_higher() {
        let previous = Fees { max_fee_per_gas: 20 * GWEI, max_priority_fee_per_gas: GWEI };
        let spiked = market(100, 3 * GWEI);
        let fees = replacement_fees(previous, spiked, 500 * GWEI).unwrap();
        assert_eq!(fees, Fees { max_fee_per_gas: 203 * GWEI, max_priority_fee_per_gas: 3 * GWEI });
    }

    #[test]
    fn new_fees_are_clamped_to_the_cap_while_the_market_fits_under_it() {
        let m = market(30, GWEI);
        assert_eq!(
            new_fees(m, 500 * GWEI).unwrap(),
            Fees { max_fee_per_gas: 61 * GWEI, max_priority_fee_per_gas: GWEI }
        );
        assert_eq!(
            new_fees(m, 40 * GWEI).unwrap(),
            Fees { max_fee_per_gas: 40 * GWEI, max_priority_fee_per_gas: GWEI }
        );
        // A tip above the cap is cut to it.
        let greedy = Market { base_fee: 0, tip: 50 * GWEI };
        assert_eq!(new_fees(greedy, 50 * GWEI).unwrap().max_priority_fee_per_gas, 50 * GWEI);
    }

    #[test]
    fn above_the_cap_the_job_waits_and_says_why() {
        let m = market(51, GWEI);
        let waiting = new_fees(m, 40 * GWEI).unwrap_err();
        assert_eq!(waiting, Waiting::Market { market: 52 * GWEI, cap: 40 * GWEI });
        assert_eq!(waiting.to_string(), "waiting for fees: market 52 gwei above the cap 40 gwei");
        let previous = Fees { max_fee_per_gas: 20 * GWEI, max_priority_fee_per_gas: GWEI };
        assert_eq!(replacement_fees(previous, m, 40 * GWEI).unwrap_err(), waiting);
    }

    #[test]
    fn a_replacement_whose_minimum_bump_passes_the_cap_waits() {
        // The market fits, but the node needs +10% over a fee cap already at the cap.
        let previous = Fees { max_fee_per_gas: 40 * GWEI, max_priority_fee_per_gas: GWEI };
        let waiting = replacement_fees(previous, market(10, GWEI), 40 * GWEI).unwrap_err();
        assert_eq!(waiting, Waiting::Bump { needed: 44 * GWEI + 1, cap: 40 * GWEI });
        assert!(waiting.to_string().starts_with("waiting for fees: a replacement needs 44 gwei"));
    }

    #[test]
    fn gwei_reads_well() {
        assert_eq!(gwei(52 * GWEI), "52");
        assert_eq!(gwei(1_500_000_000), "1.5");
        assert_eq!(gwei(MIN_TIP), "0.001");
        assert_eq!(gwei(0), "0");
    }
}
