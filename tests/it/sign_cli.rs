//! `pactum sign` run as an agent runs it: the real binary, a package piped in or a document in a
//! file, the key from the environment or a keystore. Its signatures recover to the key's address
//! over `digest_of`, and equal alloy's and the pinned `cast`'s byte for byte; its failures exit
//! non-zero with a message on stderr, nothing on stdout and no secret echoed. Needs no chain;
//! the cast test needs the pinned `cast` (`anvil/node_modules/.bin/cast`, or `PACTUM_CAST_BIN`).

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use alloy::primitives::{Signature, address};
use alloy::signers::SignerSync;
// `encrypt_keystore` takes a rand 0.8 generator; k256's rand_core is that version, so its OsRng
// serves without a second `rand` in our dependencies.
use crate::support::example_terms;
use alloy::signers::k256::elliptic_curve::rand_core::OsRng;
use alloy::signers::local::PrivateKeySigner;
use pactum::chain::toolchain;
use pactum::escrow::package::{ActivationPackage, activation_package, digest_of};
use serde_json::Value;

/// anvil's account 1, the buyer of the package below.
const BUYER_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

/// The password of the test keystore.
const PASSWORD: &str = "correct horse battery staple";

/// The documents each package part is found at.
const POINTERS: [&str; 3] = ["/activation", "/funding", "/infra_fee/permit"];

fn buyer() -> PrivateKeySigner {
    BUYER_KEY.parse().unwrap()
}

/// 100 units at 0.10 USDC with a 0.10 USDC fee, so the package has all three documents.
fn package() -> ActivationPackage {
    let terms = example_terms(buyer().address());
    activation_package(
        &terms,
        address!("0x5FbDB2315678afecb367f032d93F642f64180aa3"),
        31337,
        address!("0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512"),
        "USD Coin",
        address!("0x90F79bf6EB2c4f870365E785982E1f101E93b906"),
    )
    .unwrap()
}

fn package_json() -> Value {
    serde_json::to_value(package()).unwrap()
}

/// Runs `pactum sign <args>` with `stdin` piped in and, of the key variables, only `env` set.
fn pactum_sign(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pactum"))
        .arg("sign")
        .args(args)
        .env_remove("PACTUM_PRIVATE_KEY")
        .env_remove("PACTUM_KEYSTORE_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A run that fails before reading stdin closes it early; that is its answer, not ours.
    if let Err(e) = child.stdin.take().unwrap().write_all(stdin) {
        assert_eq!(e.kind(), ErrorKind::BrokenPipe, "{e}");
    }
    child.wait_with_output().unwrap()
}

/// The stdout of a run that must have succeeded quietly.
fn succeeded(output: Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "pactum sign failed: {stderr}");
    assert!(stderr.is_empty(), "unexpected stderr: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// The stderr of a run that must have failed, printing nothing on stdout.
fn failed(output: Output) -> String {
    assert!(!output.status.success(), "pactum sign succeeded: {output:?}");
    assert!(output.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: "), "{stderr}");
    stderr
}

/// One line, a 65-byte `0x` signature.
fn signature_line(stdout: &str) -> Signature {
    let line = stdout.strip_suffix('\n').expect("the signature ends with a newline");
    assert!(!line.contains('\n'), "one line: {stdout}");
    assert_eq!(line.len(), 2 + 2 * 65, "{line}");
    line.parse().unwrap()
}

/// A fresh folder under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("pactum-sign-cli-{}-{label}", std::process::id()));
        std::fs::remove_dir_all(&path).ok();
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

#[test]
fn signs_each_part_of_a_piped_package() {
    let package = package_json();
    let input = serde_json::to_vec(&package).unwrap();
    let signer = buyer();
    for pointer in POINTERS {
        let output =
            pactum_sign(&["--pointer", pointer], &input, &[("PACTUM_PRIVATE_KEY", BUYER_KEY)]);
        let signature = signature_line(&succeeded(output));
        let digest = digest_of(package.pointer(pointer).unwrap()).unwrap();
        assert_eq!(
            signature.recover_address_from_prehash(&digest).unwrap(),
            signer.address(),
            "{pointer}"
        );
        assert_eq!(signature, signer.sign_hash_sync(&digest).unwrap(), "{pointer}");
    }
}

#[test]
fn signs_a_file_with_a_named_key_variable_and_prints_json() {
    let dir = TempDir::new("json");
    let permit = package().infra_fee.unwrap().permit;
    let file = dir.path().join("permit.json");
    std::fs::write(&file, serde_json::to_vec_pretty(&permit).unwrap()).unwrap();

    let output = pactum_sign(
        &["--json", "--private-key-env", "BUYER_KEY", file.to_str().unwrap()],
        b"",
        &[("BUYER_KEY", BUYER_KEY)],
    );
    let stdout = succeeded(output);
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let digest = digest_of(&permit).unwrap();
    let expected = buyer().sign_hash_sync(&digest).unwrap();
    assert_eq!(json["signer"], buyer().address().to_checksum(None));
    assert_eq!(json["digest"], digest.to_string());
    assert_eq!(json["signature"].as_str().unwrap().parse::<Signature>().unwrap(), expected);
}

#[test]
fn cast_gives_the_same_signature() {
    let activation = package().activation;
    let ours = signature_line(&succeeded(pactum_sign(
        &["-"],
        &serde_json::to_vec(&activation).unwrap(),
        &[("PACTUM_PRIVATE_KEY", BUYER_KEY)],
    )));

    let cast = toolchain::binary("cast");
    let output = Command::new(&cast)
        .args(["wallet", "sign", "--data", "--private-key", BUYER_KEY])
        .arg(activation.to_string())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} (run anvil/ensure.sh): {e}", cast.display()));
    assert!(output.status.success(), "cast: {}", String::from_utf8_lossy(&output.stderr));
    let theirs: Signature = String::from_utf8(output.stdout).unwrap().trim().parse().unwrap();
    assert_eq!(ours, theirs);
}

#[test]
fn signs_with_a_keystore_and_refuses_a_wrong_password() {
    let dir = TempDir::new("keystore");
    let (signer, _uuid) = PrivateKeySigner::encrypt_keystore(
        dir.path(),
        &mut OsRng,
        buyer().to_bytes(),
        PASSWORD,
        Some("buyer.json"),
    )
    .unwrap();
    assert_eq!(signer.address(), buyer().address());
    let keystore = dir.path().join("buyer.json");
    let keystore = keystore.to_str().unwrap();
    let package = package_json();
    let input = serde_json::to_vec(&package).unwrap();
    let args = ["--keystore", keystore, "--pointer", "/funding"];

    let output = pactum_sign(&args, &input, &[("PACTUM_KEYSTORE_PASSWORD", PASSWORD)]);
    let digest = digest_of(&package["funding"]).unwrap();
    assert_eq!(signature_line(&succeeded(output)), buyer().sign_hash_sync(&digest).unwrap());

    let wrong = "tr0ub4dor&3";
    let stderr = failed(pactum_sign(&args, &input, &[("PACTUM_KEYSTORE_PASSWORD", wrong)]));
    assert!(stderr.contains("cannot decrypt the keystore"), "{stderr}");
    assert!(stderr.contains("PACTUM_KEYSTORE_PASSWORD"), "{stderr}");
    assert!(!stderr.contains(wrong) && !stderr.contains(PASSWORD), "{stderr}");

    let args = ["--keystore", keystore, "--password-env", "KEYSTORE_PASS", "--pointer", "/funding"];
    let stderr = failed(pactum_sign(&args, &input, &[("PACTUM_KEYSTORE_PASSWORD", PASSWORD)]));
    assert!(stderr.contains("KEYSTORE_PASS is not set"), "{stderr}");
}

#[test]
fn failures_exit_non_zero_with_a_message_and_no_output() {
    let bad_key = "0xnot-a-key-but-a-secret-all-the-same";
    let expect_failure = |args: &[&str], stdin: &[u8], env: &[(&str, &str)], message: &str| {
        let stderr = failed(pactum_sign(args, stdin, env));
        assert!(stderr.contains(message), "expected {message:?} in {stderr}");
        assert!(!stderr.contains(&BUYER_KEY[2..]) && !stderr.contains(bad_key), "{stderr}");
    };
    let package = serde_json::to_vec(&package_json()).unwrap();
    let key = [("PACTUM_PRIVATE_KEY", BUYER_KEY)];
    let documents = "/activation, /funding, /infra_fee/permit";

    expect_failure(&[], b"{\"types\": ", &key, "the input (stdin) is not valid JSON");
    expect_failure(&["/nonexistent/pactum.json"], b"", &key, "cannot read /nonexistent");
    expect_failure(
        &["--pointer", "/nope"],
        &package,
        &key,
        &format!("nothing at `/nope` in the input; documents are at: {documents}"),
    );
    expect_failure(&["--pointer", "activation"], &package, &key, "starts with `/`");
    expect_failure(
        &[],
        &package,
        &key,
        &format!(
            "the input is not an EIP-712 typed-data document: no `types`, `primaryType`, \
             `domain`, `message`; pick a document inside with --pointer: {documents}"
        ),
    );

    let mut mismatched = package_json()["activation"].clone();
    mismatched["types"]["EIP712Domain"].as_array_mut().unwrap().remove(1);
    let mismatched = serde_json::to_vec(&mismatched).unwrap();
    expect_failure(&[], &mismatched, &key, "EIP712Domain type list does not match");

    let activation = ["--pointer", "/activation"];
    expect_failure(&activation, &package, &[], "PACTUM_PRIVATE_KEY is not set");
    expect_failure(
        &activation,
        &package,
        &[("PACTUM_PRIVATE_KEY", bad_key)],
        "PACTUM_PRIVATE_KEY does not hold a private key",
    );
}
