//! The pure activation paths: building the package the buyer signs, hashing its documents, and
//! checking the buyer's signatures the way `POST …/activate-escrow` does, minus the node.

use std::hint::black_box;

use alloy::primitives::{Address, B256, Bytes, address, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolStruct;
use pactum::agreement::terms::Terms;
use pactum::escrow::package;
use pactum::escrow::typed_data;
use pactum::escrow::verify::{self, VerifyError};
use pactum::money::TokenAmount;

use crate::{Settings, rate_of, thousands};

/// USDC on Base, and made-up escrow and fee-recipient addresses: only the bytes matter here.
const CHAIN_ID: u64 = 8453;
const TOKEN: Address = address!("0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913");
const ESCROW: Address = address!("0x5FbDB2315678afecb367f032d93F642f64180aa3");
const FEE_RECIPIENT: Address = address!("0x90F79bf6EB2c4f870365E785982E1f101E93b906");

/// Accepted terms with an infra fee, so the package carries all three documents.
fn terms(buyer: Address) -> Terms {
    Terms {
        buyer,
        seller: address!("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"),
        unit_price: TokenAmount::from_base_units(100_000),
        quantity: 100,
        infra_fee: TokenAmount::from_base_units(203_000),
        activate_by: 1_750_003_600,
        expiry: 1_750_086_400,
        close_window: 3_600,
        salt: keccak256("salt"),
        agreement_id: keccak256("ua_bench"),
    }
}

/// The buyer's three signatures over the package.
struct Signed {
    activation: Bytes,
    funding: Bytes,
    permit: Bytes,
}

fn sign(signer: &PrivateKeySigner, digest: B256) -> Bytes {
    signer.sign_hash_sync(&digest).expect("signing a digest").as_bytes().to_vec().into()
}

/// What `activate-escrow` checks before queueing, without the RPC calls: the three digests
/// (the handler reads the agreement key from the store; it is recomputed here) and an ECDSA
/// recovery for each signature, which must give the buyer.
fn check_activation(terms: &Terms, signed: &Signed) -> Result<(), VerifyError> {
    let activation = terms.activation();
    let buyer = terms.buyer;
    let expect = |digest: B256, signature: &Bytes| match verify::recover(digest, signature)? {
        signer if signer == buyer => Ok(()),
        other => Err(VerifyError::WrongSigner { expected: buyer, recovered: Some(other) }),
    };
    let token_domain = typed_data::token_domain("USD Coin".to_owned(), CHAIN_ID, TOKEN);
    let key = typed_data::agreement_key(&activation, &typed_data::escrow_domain(CHAIN_ID, ESCROW));
    expect(key, &signed.activation)?;
    let funding = typed_data::funding_authorization(&activation, ESCROW, key)
        .expect("the deposit fits 256 bits");
    expect(funding.eip712_signing_hash(&token_domain), &signed.funding)?;
    let permit = typed_data::fee_authorization(&activation, ESCROW, key);
    expect(permit.eip712_signing_hash(&token_domain), &signed.permit)
}

/// Measures and prints the pure figures.
pub(crate) fn run(settings: &Settings) {
    let signer = PrivateKeySigner::from_bytes(&keccak256("pactum bench buyer")).expect("a key");
    let terms = terms(signer.address());
    let activation = terms.activation();
    let build = || {
        package::activation_package(&activation, ESCROW, CHAIN_ID, TOKEN, "USD Coin", FEE_RECIPIENT)
            .expect("the package builds")
    };
    let built = build();
    let key = built.agreement_key;
    let signed = Signed {
        activation: sign(&signer, key),
        funding: sign(&signer, package::digest_of(&built.funding).expect("hashes")),
        permit: sign(
            &signer,
            package::digest_of(&built.infra_fee.as_ref().expect("a fee").permit).expect("hashes"),
        ),
    };
    // What is measured must be right, or the figure means nothing.
    assert_eq!(package::digest_of(&built.activation).expect("hashes"), key);
    assert_eq!(verify::recover(key, &signed.activation), Ok(signer.address()));
    check_activation(&terms, &signed).expect("the signatures are the buyer's");

    let escrow_domain = typed_data::escrow_domain(CHAIN_ID, ESCROW);
    let figures = [
        (
            "activation_package (3 documents, with fee)",
            rate_of(settings, || {
                black_box(build());
            }),
        ),
        (
            "package::digest_of (activation document)",
            rate_of(settings, || {
                black_box(package::digest_of(black_box(&built.activation)).expect("hashes"));
            }),
        ),
        (
            "typed_data::agreement_key (typed struct)",
            rate_of(settings, || {
                black_box(typed_data::agreement_key(black_box(&activation), &escrow_domain));
            }),
        ),
        (
            "verify::recover (65-byte signature)",
            rate_of(settings, || {
                black_box(verify::recover(black_box(key), &signed.activation).expect("recovers"));
            }),
        ),
        (
            "activation check (3 digests + 3 recovers)",
            rate_of(settings, || {
                check_activation(black_box(&terms), &signed).expect("valid");
            }),
        ),
    ];

    println!("\n## Pure: operations per second ({:?} rounds)\n", settings.pure_round);
    println!("| operation | median ops/s | min | max | median µs/op |");
    println!("|---|---:|---:|---:|---:|");
    for (name, rates) in figures {
        println!(
            "| {name} | {} | {} | {} | {:.1} |",
            thousands(rates.median),
            thousands(rates.min),
            thousands(rates.max),
            1e6 / rates.median,
        );
    }
}
