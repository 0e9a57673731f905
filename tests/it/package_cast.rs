//! A third-party wallet signs our activation documents unchanged: the pinned `cast` signs each
//! JSON document (`cast wallet sign --data --from-file`), and the signer recovered from that
//! signature over `digest_of(document)` is the key's own address. Needs no chain, only the
//! pinned `cast` binary (`anvil/node_modules/.bin/cast`, or `PACTUM_CAST_BIN`).

use std::path::PathBuf;
use std::process::Command;

use crate::support::example_terms;
use alloy::primitives::{Signature, address};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use pactum::chain::toolchain;
use pactum::escrow::package::{activation_package, digest_of};
use serde_json::Value;

/// anvil's account 1, the buyer of the terms below.
const BUYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// `cast wallet sign --data --from-file` over `document`, as a parsed signature.
fn cast_sign(label: &str, document: &Value) -> Signature {
    let path: PathBuf =
        std::env::temp_dir().join(format!("pactum-package-{}-{label}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    let cast = toolchain::binary("cast");
    let output = Command::new(&cast)
        .args(["wallet", "sign", "--data", "--from-file"])
        .arg(&path)
        .args(["--private-key", BUYER_KEY])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run anvil/ensure.sh): {e}", cast.display()));
    std::fs::remove_file(&path).ok();
    assert!(
        output.status.success(),
        "cast refused the {label} document: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().parse().expect("cast prints a 65-byte hex")
}

#[test]
fn cast_signs_every_activation_document_unchanged() {
    let signer: PrivateKeySigner = BUYER_KEY.parse().unwrap();
    let package = activation_package(
        &example_terms(signer.address()),
        address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        31337,
        address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
        "USD Coin",
        address!("0x90F79bf6EB2c4f870365E785982E1f101E93b906"),
    )
    .unwrap();
    let fee = package.infra_fee.as_ref().expect("the terms carry a fee");
    let documents = [
        ("activation", &package.activation),
        ("funding", &package.funding),
        ("permit", &fee.permit),
    ];

    for (label, document) in documents {
        let digest = digest_of(document).unwrap();
        let signature = cast_sign(label, document);
        assert_eq!(
            signature.recover_address_from_prehash(&digest).unwrap(),
            signer.address(),
            "cast signed a different {label} digest than digest_of computes"
        );
        // Both sides sign deterministically (RFC 6979), so the bytes agree too.
        assert_eq!(signature, signer.sign_hash_sync(&digest).unwrap(), "{label}");
    }
    assert_eq!(digest_of(&package.activation).unwrap(), package.agreement_key);
}
