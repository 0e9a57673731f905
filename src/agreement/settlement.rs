//! Settlement as pure rules, mirroring `UsageEscrow.sol`: the escrow's state, how each escrow
//! event moves it, and which settlement action a party can take now, for how much — or why not,
//! and from when. The service checks with these before it relays or hands out calldata; the
//! contract checks again on-chain.

use alloy::primitives::U256;

use super::status::AgreementStatus;
use super::terms::Terms;
use crate::vocab::string_enum;

string_enum!(
    /// The escrow's lifecycle, as the contract's `Status` enum.
    EscrowStatus {
        /// Never activated.
        None = "none",
        /// Funded; usage accrues.
        Active = "active",
        /// The buyer closed; the seller may still claim until the window ends.
        Closing = "closing",
        /// The split is final (the buyer may still have its part to withdraw).
        Settled = "settled",
    }
);

impl EscrowStatus {
    /// The contract's enum value (`escrowOf(key).status`).
    pub fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            0 => EscrowStatus::None,
            1 => EscrowStatus::Active,
            2 => EscrowStatus::Closing,
            3 => EscrowStatus::Settled,
            _ => return None,
        })
    }

    /// The agreement status an escrow in this state gives its agreement.
    pub fn agreement_status(self) -> Option<AgreementStatus> {
        match self {
            EscrowStatus::None => None,
            EscrowStatus::Active => Some(AgreementStatus::Active),
            EscrowStatus::Closing => Some(AgreementStatus::Closing),
            EscrowStatus::Settled => Some(AgreementStatus::Settled),
        }
    }
}

string_enum!(
    /// Why `sellerClaimBatch` left a claim out (`ClaimSkipped.reason`); the agreement is unchanged.
    ClaimSkipReason {
        /// Not active or closing any more, or nothing beyond what was already claimed.
        NothingToClaim = "nothing_to_claim",
        /// The seller's authorization expired or does not verify on-chain.
        InvalidAuthorization = "invalid_authorization",
        /// The buyer's voucher does not verify on-chain, or its units exceed the quantity.
        InvalidVoucher = "invalid_voucher",
        /// The token refused the transfer to the seller (blacklisted seller or paused token).
        PayoutRefused = "payout_refused",
    }
);

impl ClaimSkipReason {
    /// The contract's `SkipReason` value.
    pub fn from_u8(value: u8) -> Option<Self> {
        Self::ALL.get(usize::from(value)).copied()
    }

    /// What a skip means for the claim's action, in words.
    pub fn explanation(self) -> &'static str {
        match self {
            ClaimSkipReason::NothingToClaim => "nothing left to claim when the batch ran",
            ClaimSkipReason::InvalidAuthorization => {
                "the seller's authorization did not verify on-chain"
            }
            ClaimSkipReason::InvalidVoucher => "the buyer's voucher did not verify on-chain",
            ClaimSkipReason::PayoutRefused => {
                "the token refused the transfer to the seller; nothing changed, claim again later"
            }
        }
    }
}

/// One agreement's escrow, as `escrowOf(key)` returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EscrowState {
    /// Where the escrow stands.
    pub status: EscrowStatus,
    /// Whether the buyer's part is gone (withdrawn, or nothing was left to withdraw).
    pub buyer_withdrawn: bool,
    /// When a buyer's close window ends (or when a seller closed); 0 before any close.
    pub closes_at: u64,
    /// Units the seller has been paid for.
    pub claimed_units: u64,
}

impl EscrowState {
    /// A never-activated escrow.
    pub const NONE: EscrowState = EscrowState {
        status: EscrowStatus::None,
        buyer_withdrawn: false,
        closes_at: 0,
        claimed_units: 0,
    };

    /// When the buyer may withdraw, as the contract's `withdrawOpensAt`: `None` when there is
    /// nothing to withdraw (never activated, or already withdrawn). A settled escrow with the
    /// buyer's part still in it was settled by the seller's close, and withdraw opened then
    /// (where the contract answers 0, "open").
    pub fn withdraw_opens_at(&self, terms: &Terms) -> Option<u64> {
        if self.status == EscrowStatus::None || self.buyer_withdrawn {
            return None;
        }
        Some(match self.status {
            EscrowStatus::Settled => self.closes_at,
            EscrowStatus::Closing => self.closes_at,
            _ => terms.expiry.saturating_add(terms.close_window),
        })
    }

    /// The state after `event`, exactly as the contract moved it when it emitted the event.
    pub fn apply(self, event: &ChainEvent) -> EscrowState {
        let mut next = self;
        match *event {
            ChainEvent::Activated => {
                next = EscrowState { status: EscrowStatus::Active, ..Self::NONE }
            }
            ChainEvent::CloseInitiated { by_buyer, closes_at } => {
                next.closes_at = closes_at;
                if by_buyer {
                    next.status = EscrowStatus::Closing;
                }
                // A seller's close is followed in the same call by `AgreementSettled`.
            }
            ChainEvent::UsageClaimed { cumulative_units } => {
                next.claimed_units = next.claimed_units.max(cumulative_units);
            }
            ChainEvent::BuyerWithdrawn => next.buyer_withdrawn = true,
            ChainEvent::Settled { claimed_units, buyer_amount_is_zero } => {
                next.status = EscrowStatus::Settled;
                next.claimed_units = next.claimed_units.max(claimed_units);
                // Nothing left for the buyer means there is nothing to withdraw either.
                next.buyer_withdrawn |= buyer_amount_is_zero;
            }
            ChainEvent::ClaimSkipped => {}
        }
        next
    }

    /// What the seller has been paid, in token base units.
    pub fn seller_amount(&self, terms: &Terms) -> U256 {
        terms.unit_price.base_units() * U256::from(self.claimed_units)
    }

    /// What the buyer has been paid back, in token base units.
    pub fn buyer_amount(&self, terms: &Terms) -> U256 {
        if self.buyer_withdrawn && self.status == EscrowStatus::Settled {
            self.remaining(terms)
        } else {
            U256::ZERO
        }
    }

    /// The deposit not yet paid to the seller.
    pub fn remaining(&self, terms: &Terms) -> U256 {
        terms.unit_price.base_units()
            * U256::from(terms.quantity.saturating_sub(self.claimed_units))
    }
}

/// An escrow event, reduced to what moves the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainEvent {
    /// `EscrowActivated`.
    Activated,
    /// `CloseInitiated` (by the buyer, or by the seller), with its `closesAt`.
    CloseInitiated {
        /// Whether the buyer closed (otherwise the seller did, settling at once).
        by_buyer: bool,
        /// When withdraw opens (a buyer's close) or when the seller closed.
        closes_at: u64,
    },
    /// `UsageClaimed` up to `cumulative_units`.
    UsageClaimed {
        /// The claimed total.
        cumulative_units: u64,
    },
    /// `BuyerWithdrawn`.
    BuyerWithdrawn,
    /// `AgreementSettled`.
    Settled {
        /// Units paid in all.
        claimed_units: u64,
        /// Whether the buyer's share is zero.
        buyer_amount_is_zero: bool,
    },
    /// `ClaimSkipped`: a batched claim found nothing to pay.
    ClaimSkipped,
}

string_enum!(
    /// A settlement action.
    Action {
        /// `initiateClose`: the buyer starts the close window; the seller closes and settles.
        InitiateClose = "initiate_close",
        /// `sellerClaim`: the seller is paid up to the buyer's best voucher.
        SellerClaim = "seller_claim",
        /// `buyerWithdraw`: the buyer takes back what was not used.
        BuyerWithdraw = "buyer_withdraw",
    }
);

string_enum!(
    /// Which side of the agreement a caller is.
    Party {
        /// Pays.
        Buyer = "buyer",
        /// Is paid.
        Seller = "seller",
    }
);

/// An action that can be taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// The units the action signs for: `finalUnits` of a close, `cumulativeUnits` of a claim
    /// (0 for a buyer's close and for a withdraw).
    pub units: u64,
    /// What moves when it executes, in token base units.
    pub amount: U256,
    /// Who receives `amount`.
    pub recipient: Party,
    /// Whether the action needs the buyer's voucher for `units`.
    pub needs_voucher: bool,
}

string_enum!(
    /// Why an action is refused, as a stable machine code.
    RefusalCode {
        /// `wrong_party`.
        WrongParty = "wrong_party",
        /// `escrow_not_active`.
        EscrowNotActive = "escrow_not_active",
        /// `already_closing`.
        AlreadyClosing = "already_closing",
        /// `already_settled`.
        AlreadySettled = "already_settled",
        /// `buyer_withdrawn`.
        BuyerWithdrawn = "buyer_withdrawn",
        /// `nothing_to_claim`.
        NothingToClaim = "nothing_to_claim",
        /// `withdraw_not_open`.
        WithdrawNotOpen = "withdraw_not_open",
        /// `already_withdrawn`.
        AlreadyWithdrawn = "already_withdrawn",
    }
);

/// Why an action cannot be taken now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// A stable machine code.
    pub code: RefusalCode,
    /// What to tell the caller.
    pub message: String,
    /// When it becomes possible (unix seconds), if time alone will make it so.
    pub available_at: Option<u64>,
}

impl Refusal {
    fn new(code: RefusalCode, message: impl Into<String>) -> Self {
        Refusal { code, message: message.into(), available_at: None }
    }
}

/// Whether `party` can take `action` now (`now` is the chain's clock), given the escrow `state`,
/// the `terms` and the highest voucher the buyer signed (`voucher_units`); and if so, what it
/// signs for and what moves. Mirrors the contract's checks one for one.
pub fn plan(
    action: Action,
    party: Party,
    state: &EscrowState,
    terms: &Terms,
    voucher_units: u64,
    now: u64,
) -> Result<Plan, Refusal> {
    let allowed = match action {
        Action::InitiateClose => true,
        Action::SellerClaim => party == Party::Seller,
        Action::BuyerWithdraw => party == Party::Buyer,
    };
    if !allowed {
        return Err(Refusal::new(
            RefusalCode::WrongParty,
            format!("only the {} can {}", other(party).as_str(), action.as_str().replace('_', " ")),
        ));
    }
    if state.status == EscrowStatus::None {
        return Err(Refusal::new(
            RefusalCode::EscrowNotActive,
            "the escrow is not activated on-chain",
        ));
    }
    let price = terms.unit_price.base_units();
    let claimable = |units: u64| price * U256::from(units.saturating_sub(state.claimed_units));
    match (action, party) {
        (Action::InitiateClose, Party::Buyer) => match state.status {
            EscrowStatus::Active => Ok(Plan {
                units: 0,
                amount: U256::ZERO,
                recipient: Party::Buyer,
                needs_voucher: false,
            }),
            EscrowStatus::Closing => Err(Refusal::new(
                RefusalCode::AlreadyClosing,
                "the close window is already running",
            )),
            _ => Err(settled(state)),
        },
        (Action::InitiateClose, Party::Seller) => match state.status {
            EscrowStatus::Active | EscrowStatus::Closing => {
                let units = voucher_units.max(state.claimed_units);
                Ok(Plan {
                    units,
                    amount: claimable(units),
                    recipient: Party::Seller,
                    needs_voucher: units > state.claimed_units,
                })
            }
            _ => Err(settled(state)),
        },
        (Action::SellerClaim, _) => match state.status {
            EscrowStatus::Active | EscrowStatus::Closing => {
                if voucher_units <= state.claimed_units {
                    return Err(Refusal::new(
                        RefusalCode::NothingToClaim,
                        format!(
                            "the buyer's best voucher ({voucher_units} units) is not above the \
                             {} units already claimed",
                            state.claimed_units
                        ),
                    ));
                }
                Ok(Plan {
                    units: voucher_units,
                    amount: claimable(voucher_units),
                    recipient: Party::Seller,
                    needs_voucher: true,
                })
            }
            _ => Err(settled(state)),
        },
        (Action::BuyerWithdraw, _) => {
            let Some(opens_at) = state.withdraw_opens_at(terms) else {
                return Err(Refusal::new(
                    RefusalCode::AlreadyWithdrawn,
                    "the buyer's part was already withdrawn (or nothing was left)",
                ));
            };
            if now < opens_at {
                return Err(Refusal {
                    available_at: Some(opens_at),
                    ..Refusal::new(
                        RefusalCode::WithdrawNotOpen,
                        "withdraw opens when the close window ends (or at expiry plus the \
                         window when nobody closed)",
                    )
                });
            }
            Ok(Plan {
                units: 0,
                amount: state.remaining(terms),
                recipient: Party::Buyer,
                needs_voucher: false,
            })
        }
    }
}

fn settled(state: &EscrowState) -> Refusal {
    if state.buyer_withdrawn {
        Refusal::new(
            RefusalCode::BuyerWithdrawn,
            "the agreement is settled and the buyer's part withdrawn",
        )
    } else {
        Refusal::new(
            RefusalCode::AlreadySettled,
            "the agreement is settled; only the buyer's withdraw is left",
        )
    }
}

fn other(party: Party) -> Party {
    match party {
        Party::Buyer => Party::Seller,
        Party::Seller => Party::Buyer,
    }
}

/// Terms and escrow states the unit tests of settlement rules share.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{ChainEvent, EscrowState};
    use crate::agreement::terms::Terms;
    use crate::money::TokenAmount;
    use alloy::primitives::{Address, B256};

    /// 100 units at 0.10 USDC, no fee, activate by 1,000, expiry 10,000, a 500 s close window.
    pub(crate) fn terms() -> Terms {
        Terms {
            buyer: Address::repeat_byte(1),
            seller: Address::repeat_byte(2),
            unit_price: TokenAmount::from_base_units(100_000),
            quantity: 100,
            infra_fee: TokenAmount::from_base_units(0),
            activate_by: 1_000,
            expiry: 10_000,
            close_window: 500,
            salt: B256::ZERO,
            agreement_id: B256::ZERO,
        }
    }

    /// An active escrow with `claimed` units paid.
    pub(crate) fn active(claimed: u64) -> EscrowState {
        EscrowState { claimed_units: claimed, ..EscrowState::NONE.apply(&ChainEvent::Activated) }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{active, terms};
    use super::*;

    #[test]
    fn a_buyer_close_opens_withdraw_at_the_window_end_and_the_seller_may_claim_until_then() {
        let t = terms();
        let closing =
            active(10).apply(&ChainEvent::CloseInitiated { by_buyer: true, closes_at: 2_500 });
        assert_eq!(closing.status, EscrowStatus::Closing);
        let early = plan(Action::BuyerWithdraw, Party::Buyer, &closing, &t, 0, 2_499).unwrap_err();
        assert_eq!((early.code, early.available_at), (RefusalCode::WithdrawNotOpen, Some(2_500)));
        let claim = plan(Action::SellerClaim, Party::Seller, &closing, &t, 40, 2_499).unwrap();
        assert_eq!((claim.units, claim.amount), (40, U256::from(3_000_000)));
        let withdraw = plan(Action::BuyerWithdraw, Party::Buyer, &closing, &t, 0, 2_500).unwrap();
        assert_eq!(withdraw.amount, U256::from(9_000_000));
    }

    #[test]
    fn a_seller_close_pays_up_to_the_voucher_and_settles() {
        let t = terms();
        let p = plan(Action::InitiateClose, Party::Seller, &active(10), &t, 30, 100).unwrap();
        assert_eq!((p.units, p.amount, p.needs_voucher), (30, U256::from(2_000_000), true));
        let settled = active(10)
            .apply(&ChainEvent::CloseInitiated { by_buyer: false, closes_at: 100 })
            .apply(&ChainEvent::UsageClaimed { cumulative_units: 30 })
            .apply(&ChainEvent::Settled { claimed_units: 30, buyer_amount_is_zero: false });
        assert_eq!(settled.status, EscrowStatus::Settled);
        assert_eq!(settled.withdraw_opens_at(&t), Some(100), "open since the seller closed");
        let w = plan(Action::BuyerWithdraw, Party::Buyer, &settled, &t, 30, 100).unwrap();
        assert_eq!(w.amount, U256::from(7_000_000));
        let c = plan(Action::SellerClaim, Party::Seller, &settled, &t, 50, 100).unwrap_err();
        assert_eq!(c.code, RefusalCode::AlreadySettled);
    }

    #[test]
    fn without_a_close_withdraw_opens_at_expiry_plus_the_window() {
        let t = terms();
        let e = plan(Action::BuyerWithdraw, Party::Buyer, &active(0), &t, 0, 10_499).unwrap_err();
        assert_eq!(e.available_at, Some(10_500));
        assert!(plan(Action::BuyerWithdraw, Party::Buyer, &active(0), &t, 0, 10_500).is_ok());
    }

    #[test]
    fn each_action_belongs_to_its_party() {
        let t = terms();
        let s = active(0);
        assert_eq!(
            plan(Action::SellerClaim, Party::Buyer, &s, &t, 5, 0).unwrap_err().code,
            RefusalCode::WrongParty
        );
        assert_eq!(
            plan(Action::BuyerWithdraw, Party::Seller, &s, &t, 5, 0).unwrap_err().code,
            RefusalCode::WrongParty
        );
        assert!(plan(Action::InitiateClose, Party::Buyer, &s, &t, 5, 0).is_ok());
        assert!(plan(Action::InitiateClose, Party::Seller, &s, &t, 5, 0).is_ok());
    }

    #[test]
    fn nothing_is_possible_before_activation_and_a_claim_needs_a_higher_voucher() {
        let t = terms();
        let none = plan(Action::InitiateClose, Party::Buyer, &EscrowState::NONE, &t, 0, 0);
        assert_eq!(none.unwrap_err().code, RefusalCode::EscrowNotActive);
        assert_eq!(
            plan(Action::SellerClaim, Party::Seller, &active(20), &t, 20, 0).unwrap_err().code,
            RefusalCode::NothingToClaim
        );
    }

    #[test]
    fn after_the_buyer_withdrew_nothing_is_left() {
        let t = terms();
        let done = active(10)
            .apply(&ChainEvent::BuyerWithdrawn)
            .apply(&ChainEvent::Settled { claimed_units: 10, buyer_amount_is_zero: false });
        assert_eq!(
            plan(Action::SellerClaim, Party::Seller, &done, &t, 50, 0).unwrap_err().code,
            RefusalCode::BuyerWithdrawn
        );
        assert_eq!(
            plan(Action::BuyerWithdraw, Party::Buyer, &done, &t, 0, 0).unwrap_err().code,
            RefusalCode::AlreadyWithdrawn
        );
        assert_eq!(done.buyer_amount(&t), U256::from(9_000_000));
    }

    #[test]
    fn claiming_everything_settles_with_nothing_to_withdraw() {
        let t = terms();
        let all = active(0)
            .apply(&ChainEvent::UsageClaimed { cumulative_units: 100 })
            .apply(&ChainEvent::Settled { claimed_units: 100, buyer_amount_is_zero: true });
        assert_eq!(all.withdraw_opens_at(&t), None);
        assert_eq!(all.seller_amount(&t), U256::from(10_000_000));
    }
}
