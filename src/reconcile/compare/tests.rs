use super::*;
use crate::agreement::ids::AgreementId;
use crate::agreement::status::ActivationStatus;
use crate::agreement::terms::Terms;
use crate::store::agreements::StoredEscrow;

const ESCROW: Address = Address::repeat_byte(0xe5);

fn domain() -> Eip712Domain {
    typed_data::escrow_domain(31_337, ESCROW)
}

/// 100 units at 0.10 USDC (a 10 USDC deposit) with a 0.10 USDC fee.
fn terms(salt: u8) -> Terms {
    Terms {
        buyer: Address::repeat_byte(1),
        seller: Address::repeat_byte(2),
        unit_price: TokenAmount::from_base_units(100_000),
        quantity: 100,
        infra_fee: TokenAmount::from_base_units(100_000),
        activate_by: 1_000,
        expiry: 2_000,
        close_window: 3_600,
        salt: B256::repeat_byte(salt),
        agreement_id: B256::repeat_byte(0xa0 ^ salt),
    }
}

fn key_of(terms: &Terms) -> B256 {
    typed_data::agreement_key(&terms.activation(), &domain())
}

/// An active agreement as the watcher records it, with `claimed` units claimed.
fn stored(salt: u8, status: EscrowStatus, claimed: u64, withdrawn: bool) -> KeyedAgreement {
    let terms = terms(salt);
    KeyedAgreement {
        id: AgreementId(format!("ua_{salt:028x}")),
        key: key_of(&terms),
        status: status.agreement_status().unwrap_or(AgreementStatus::Accepted),
        activation_status: ActivationStatus::Confirmed,
        activation_tx_hash: Some(B256::repeat_byte(0x77)),
        terms: Some(terms),
        escrow: (status != EscrowStatus::None).then_some(StoredEscrow {
            status,
            claimed_units: claimed,
            buyer_withdrawn: withdrawn,
        }),
    }
}

fn state(status: EscrowStatus, claimed: u64, withdrawn: bool) -> EscrowState {
    EscrowState { status, claimed_units: claimed, buyer_withdrawn: withdrawn, closes_at: 0 }
}

fn activated(terms: &Terms, block_number: u64) -> Activated {
    Activated {
        key: key_of(terms),
        deposit: terms.deposit(),
        unit_price: terms.unit_price,
        block_number,
    }
}

/// A chain holding `escrows`, whose activations were all scanned, with `balance` in the escrow
/// and `fees` accrued.
fn chain(escrows: &[(&Terms, EscrowState)], balance: u64, fees: u64) -> ChainView {
    ChainView {
        chain_id: 31_337,
        escrow: ESCROW,
        block_number: 42,
        block_hash: B256::repeat_byte(0x42),
        escrows: escrows.iter().map(|(t, s)| (key_of(t), *s)).collect(),
        activations: Some((
            BlockRange { from: 0, to: 42 },
            escrows.iter().map(|(t, _)| (key_of(t), activated(t, 7))).collect(),
        )),
        balance: Some((U256::from(balance), U256::from(fees))),
    }
}

fn kinds(report: &Report) -> Vec<MismatchKind> {
    report.mismatches.iter().map(|m| m.kind).collect()
}

#[test]
fn a_store_that_agrees_with_the_chain_is_clean() {
    let (a, b) = (terms(1), terms(2));
    let store =
        [stored(1, EscrowStatus::Active, 30, false), stored(2, EscrowStatus::Settled, 40, true)];
    // a: 10 USDC − 30 × 0.10 still open; b: withdrawn; two fees accrued.
    let chain = chain(
        &[
            (&a, state(EscrowStatus::Active, 30, false)),
            (&b, state(EscrowStatus::Settled, 40, true)),
        ],
        7_000_000 + 200_000,
        200_000,
    );
    let report = compare(Scope::Deployment, &store, &chain, &domain());
    assert!(report.clean, "{report:#?}");
    assert_eq!(report.agreements_checked, 2);
    let balance = report.balance.unwrap();
    assert_eq!(balance.open_deposits, TokenAmount::from_base_units(7_000_000));
    assert_eq!(balance.expected, balance.token_balance);
    assert_eq!(balance.escrows_counted, 2);
    assert_eq!(report.activations_scanned, Some(BlockRange { from: 0, to: 42 }));
}

#[test]
fn claimed_units_that_differ_are_reported_with_both_sides() {
    let a = terms(1);
    let store = [stored(1, EscrowStatus::Active, 7, false)];
    let chain = chain(&[(&a, state(EscrowStatus::Active, 0, false))], 10_100_000, 100_000);
    let report = compare(Scope::Deployment, &store, &chain, &domain());
    assert_eq!(kinds(&report), [MismatchKind::ClaimedUnits]);
    let m = &report.mismatches[0];
    assert_eq!((m.store.as_deref(), m.chain.as_deref()), (Some("7"), Some("0")));
    assert_eq!(m.agreement_id.as_deref(), Some(store[0].id.as_str()));
    assert_eq!(m.agreement_key, Some(store[0].key));
    assert!(m.message.contains("700000 base units"), "{}", m.message);
    assert!(!report.clean);
}

#[test]
fn an_escrow_moved_behind_the_store_shows_in_both_statuses() {
    let a = terms(1);
    let store = [stored(1, EscrowStatus::Active, 0, false)];
    let chain = chain(&[(&a, state(EscrowStatus::Closing, 0, false))], 10_100_000, 100_000);
    let report = compare(Scope::Deployment, &store, &chain, &domain());
    assert_eq!(kinds(&report), [MismatchKind::EscrowStatus, MismatchKind::AgreementStatus]);
    let m = &report.mismatches[0];
    assert_eq!((m.store.as_deref(), m.chain.as_deref()), (Some("active"), Some("closing")));
}

#[test]
fn a_withdrawal_the_store_missed_is_reported() {
    let a = terms(1);
    let store = [stored(1, EscrowStatus::Settled, 40, false)];
    let chain = chain(&[(&a, state(EscrowStatus::Settled, 40, true))], 100_000, 100_000);
    let report = compare(Scope::Deployment, &store, &chain, &domain());
    assert_eq!(kinds(&report), [MismatchKind::BuyerWithdrawn]);
}

#[test]
fn a_confirmed_activation_missing_on_chain_is_reported() {
    let store = [stored(1, EscrowStatus::Active, 0, false)];
    let mut chain = chain(&[], 0, 0);
    chain.escrows.clear();
    let report = compare(Scope::Deployment, &store, &chain, &domain());
    assert_eq!(kinds(&report), [MismatchKind::EscrowStatus]);
    assert_eq!(report.mismatches[0].chain.as_deref(), Some("none"));
}

#[test]
fn a_broadcast_activation_not_yet_mined_is_pending_not_a_mismatch() {
    let mut row = stored(1, EscrowStatus::None, 0, false);
    row.status = AgreementStatus::Activating;
    row.activation_status = ActivationStatus::Submitted;
    let report = compare(Scope::Deployment, &[row], &chain(&[], 0, 0), &domain());
    assert!(report.clean, "{report:#?}");
    assert_eq!(report.pending_activations, 1);
}

#[test]
fn activations_unknown_to_the_store_are_reported_and_counted_in_the_balance() {
    let a = terms(1);
    let chain = chain(&[(&a, state(EscrowStatus::Active, 0, false))], 10_100_000, 100_000);
    let report = compare(Scope::Deployment, &[], &chain, &domain());
    assert_eq!(kinds(&report), [MismatchKind::UnknownToStore]);
    let m = &report.mismatches[0];
    assert_eq!((m.store.as_deref(), m.chain.as_deref()), (None, Some("active")));
    assert_eq!(m.agreement_key, Some(key_of(&a)));
    assert_eq!(report.balance.unwrap().expected, TokenAmount::from_base_units(10_100_000));
}

#[test]
fn terms_that_do_not_hash_to_their_key_are_reported() {
    let a = terms(1);
    let mut row = stored(1, EscrowStatus::Active, 0, false);
    row.terms.as_mut().unwrap().quantity = 1_000;
    let chain = chain(&[(&a, state(EscrowStatus::Active, 0, false))], 10_100_000, 100_000);
    let report = compare(Scope::Deployment, &[row], &chain, &domain());
    // The event's deposit (10 USDC) prices the escrow, so the balance still adds up.
    assert_eq!(kinds(&report), [MismatchKind::TermsKey, MismatchKind::Deposit]);
    assert_eq!(report.mismatches[1].store.as_deref(), Some("100000000"));
    assert_eq!(report.mismatches[1].chain.as_deref(), Some("10000000"));
}

#[test]
fn tokens_the_escrows_do_not_account_for_are_a_balance_mismatch() {
    let a = terms(1);
    let store = [stored(1, EscrowStatus::Active, 0, false)];
    let chain = chain(&[(&a, state(EscrowStatus::Active, 0, false))], 10_100_001, 100_000);
    let report = compare(Scope::Deployment, &store, &chain, &domain());
    assert_eq!(kinds(&report), [MismatchKind::TokenBalance]);
    let m = &report.mismatches[0];
    assert_eq!((m.store.as_deref(), m.chain.as_deref()), (Some("10100000"), Some("10100001")));
    assert!(m.message.contains("1 base units more"), "{}", m.message);
}

#[test]
fn an_account_reconciliation_leaves_deployment_checks_out() {
    let a = terms(1);
    let store = [stored(1, EscrowStatus::Active, 0, false)];
    let mut chain = chain(&[(&a, state(EscrowStatus::Active, 0, false))], 1, 0);
    chain.activations = None;
    chain.balance = None;
    let report = compare(Scope::Account, &store, &chain, &domain());
    assert!(report.clean, "{report:#?}");
    assert_eq!((report.balance, report.activations_scanned), (None, None));
}

#[test]
fn the_summary_names_each_mismatch_and_both_sides() {
    let a = terms(1);
    let store = [stored(1, EscrowStatus::Active, 7, false)];
    let chain = chain(&[(&a, state(EscrowStatus::Active, 0, false))], 10_100_000, 100_000);
    let summary = compare(Scope::Deployment, &store, &chain, &domain()).summary();
    assert!(summary.contains("1 mismatch(es)"), "{summary}");
    assert!(summary.contains("claimed_units"), "{summary}");
    assert!(summary.contains("store 7 / chain 0"), "{summary}");
}
