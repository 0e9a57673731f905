//! `pactum sign`: signs an `eth_signTypedData_v4` document with a local key, so a buyer or seller
//! agent can sign what the relayer hands it without writing code and without its key leaving the
//! machine.
//!
//! The document comes from a file or stdin, optionally picked out of a larger JSON (a whole
//! activation package) by a JSON pointer, and is hashed by [`digest_of`] exactly as a wallet
//! hashes it. The key comes from an environment variable or an encrypted JSON keystore, never
//! from an argument, where `ps` and shell history would see it.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Signature, hex};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, anyhow, bail};
use pactum::escrow::package::digest_of;
use serde_json::{Value, json};

/// Arguments of `pactum sign`.
///
/// The key flags name environment variables rather than take `env = "PACTUM_…"` like other
/// flags: the variable holds the secret itself, and naming it lets one shell hold several keys.
#[derive(Debug, clap::Args)]
pub(crate) struct SignArgs {
    /// The typed-data JSON file; `-` or absent reads stdin.
    #[arg(value_name = "FILE")]
    document: Option<PathBuf>,

    /// A JSON pointer to the document inside the input, e.g. `/activation` or
    /// `/infra_fee/permit` to sign one part of an activation package.
    #[arg(long, value_name = "POINTER")]
    pointer: Option<String>,

    /// Print `{"signer", "digest", "signature"}` as JSON instead of the bare signature.
    #[arg(long)]
    json: bool,

    /// The environment variable holding the private key (0x hex).
    #[arg(
        long,
        value_name = "VAR",
        default_value = "PACTUM_PRIVATE_KEY",
        conflicts_with = "keystore",
        help_heading = "Key"
    )]
    private_key_env: String,

    /// An encrypted Ethereum JSON keystore to sign with instead of a private key.
    #[arg(long, value_name = "FILE", help_heading = "Key")]
    keystore: Option<PathBuf>,

    /// The environment variable holding the keystore's password.
    #[arg(
        long,
        value_name = "VAR",
        default_value = "PACTUM_KEYSTORE_PASSWORD",
        requires = "keystore",
        help_heading = "Key"
    )]
    password_env: String,
}

/// Signs the document and prints the 65-byte signature (`r ‖ s ‖ v`, `v` 27 or 28) as `0x` hex,
/// or the JSON summary with `--json`.
pub(crate) fn run(args: &SignArgs) -> anyhow::Result<()> {
    let input = read_input(args.document.as_deref())?;
    let document = select(&input, args.pointer.as_deref())?;
    if let Some(why) = not_typed_data(document) {
        let what = match args.pointer.as_deref() {
            Some(pointer) if !pointer.is_empty() => format!("`{pointer}`"),
            _ => "the input".to_owned(),
        };
        let found = typed_data_pointers(document);
        let hint = if found.is_empty() {
            String::new()
        } else {
            format!("; pick a document inside with --pointer: {}", found.join(", "))
        };
        bail!("{what} is not an EIP-712 typed-data document: {why}{hint}");
    }
    // Hash before touching the key: a wrong document is reported without a key at hand, and a
    // keystore (slow to decrypt by design) is opened only for something signable. The error is
    // flattened to its message, which already quotes its cause.
    let digest = digest_of(document).map_err(|e| anyhow!("{e}"))?;
    let signer = load_signer(args)?;
    let signature = signer.sign_hash_sync(&digest).context("cannot sign the digest")?;
    let output = render(&signature, signer.address(), digest, args.json);
    writeln!(std::io::stdout().lock(), "{output}").context("cannot write the signature")?;
    Ok(())
}

/// The input parsed as JSON, from `path` or from stdin when it is absent or `-`.
fn read_input(path: Option<&Path>) -> anyhow::Result<Value> {
    let (bytes, source) = match path.filter(|p| *p != Path::new("-")) {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            (bytes, path.display().to_string())
        }
        None => {
            let mut stdin = std::io::stdin().lock();
            // Waiting on a terminal would look like a hang to someone who forgot the file.
            if stdin.is_terminal() {
                bail!("no document: give a file, or pipe the JSON into stdin");
            }
            let mut bytes = Vec::new();
            stdin.read_to_end(&mut bytes).context("cannot read stdin")?;
            (bytes, "stdin".to_owned())
        }
    };
    serde_json::from_slice(&bytes)
        .with_context(|| format!("the input ({source}) is not valid JSON"))
}

/// The value at `pointer` in `input` (RFC 6901), or `input` itself without one.
fn select<'a>(input: &'a Value, pointer: Option<&str>) -> anyhow::Result<&'a Value> {
    let Some(pointer) = pointer else { return Ok(input) };
    if !pointer.is_empty() && !pointer.starts_with('/') {
        bail!("`{pointer}` is not a JSON pointer: it starts with `/`, as in `/activation`");
    }
    input.pointer(pointer).ok_or_else(|| {
        let found = typed_data_pointers(input);
        if found.is_empty() {
            anyhow!("nothing at `{pointer}` in the input")
        } else {
            anyhow!("nothing at `{pointer}` in the input; documents are at: {}", found.join(", "))
        }
    })
}

/// Why `document` is not shaped like an `eth_signTypedData_v4` document, if it is not; checked
/// before hashing so that the message names what is missing rather than a serde internal.
fn not_typed_data(document: &Value) -> Option<String> {
    let Value::Object(members) = document else {
        return Some("not a JSON object".to_owned());
    };
    let missing: Vec<_> = ["types", "primaryType", "domain", "message"]
        .into_iter()
        .filter(|member| !members.contains_key(*member))
        .map(|member| format!("`{member}`"))
        .collect();
    (!missing.is_empty()).then(|| format!("no {}", missing.join(", ")))
}

/// JSON pointers to the typed-data documents (objects with `types` and `primaryType`) inside
/// `value`, sorted, for hints when the wrong part of a package was given. Empty when `value` is
/// itself one: its own members are not documents to sign.
fn typed_data_pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, found: &mut Vec<String>) {
        if value.get("types").is_some() && value.get("primaryType").is_some() {
            if !at.is_empty() {
                found.push(at);
            }
            return;
        }
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    // RFC 6901 escaping, so the hint can be pasted back as is.
                    let token = key.replace('~', "~0").replace('/', "~1");
                    walk(child, format!("{at}/{token}"), found);
                }
            }
            Value::Array(items) => {
                for (index, child) in items.iter().enumerate() {
                    walk(child, format!("{at}/{index}"), found);
                }
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(value, String::new(), &mut found);
    // Sorted, as the input's member order is lost in parsing anyway.
    found.sort();
    found
}

/// The signer from the keystore when one is given, else from the private-key variable.
fn load_signer(args: &SignArgs) -> anyhow::Result<PrivateKeySigner> {
    let Some(keystore) = &args.keystore else {
        let key = secret_from_env(&args.private_key_env, "--private-key-env")?;
        return parse_key(&key, &args.private_key_env);
    };
    // Checked first so a wrong path is not reported as a decryption failure.
    std::fs::metadata(keystore)
        .with_context(|| format!("cannot read the keystore {}", keystore.display()))?;
    let password = secret_from_env(&args.password_env, "--password-env")?;
    // The keystore's own error says "Mac Mismatch" for a wrong password; none of its errors
    // carries the password or the key.
    PrivateKeySigner::decrypt_keystore(keystore, password).map_err(|e| {
        anyhow!(
            "cannot decrypt the keystore {} with the password in {}: {e}",
            keystore.display(),
            args.password_env
        )
    })
}

/// The secret held by the environment variable `var`; `flag` names the option that picks it.
fn secret_from_env(var: &str, flag: &str) -> anyhow::Result<String> {
    std::env::var(var).map_err(|e| match e {
        std::env::VarError::NotPresent => {
            anyhow!("the environment variable {var} is not set (choose another with {flag})")
        }
        std::env::VarError::NotUnicode(_) => anyhow!("the environment variable {var} is not UTF-8"),
    })
}

/// `key` (hex, `0x` optional) as a signer. The parse error is dropped, not wrapped: it can quote
/// a character of the key.
fn parse_key(key: &str, var: &str) -> anyhow::Result<PrivateKeySigner> {
    key.trim()
        .parse()
        .map_err(|_| anyhow!("{var} does not hold a private key (32 bytes as 0x hex)"))
}

/// The bare signature as `0x` hex, or with `json` the signer, digest and signature as one line
/// of JSON.
fn render(signature: &Signature, signer: Address, digest: B256, json: bool) -> String {
    let signature = hex::encode_prefixed(signature.as_bytes());
    if !json {
        return signature;
    }
    json!({
        "signer": signer.to_checksum(None),
        "digest": digest.to_string(),
        "signature": signature,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// anvil's account 0.
    const KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    #[test]
    fn a_pointer_selects_a_part_and_a_miss_lists_the_documents() {
        let input = json!({
            "activation": {"types": {}, "primaryType": "Activation"},
            "infra_fee": {"amount": "1", "permit": {"types": {}, "primaryType": "Permit"}},
            "a/b~c": [{"types": {}, "primaryType": "X"}],
        });
        assert_eq!(select(&input, None).unwrap(), &input);
        assert_eq!(select(&input, Some("/infra_fee/amount")).unwrap(), "1");
        assert_eq!(select(&input, Some("/a~1b~0c/0/primaryType")).unwrap(), "X");

        let miss = select(&input, Some("/activaton")).unwrap_err().to_string();
        assert!(miss.contains("/activation, /a~1b~0c/0, /infra_fee/permit"), "{miss}");
        let relative = select(&input, Some("activation")).unwrap_err().to_string();
        assert!(relative.contains("starts with `/`"), "{relative}");
    }

    #[test]
    fn a_document_needs_the_four_members() {
        let document = json!({"types": {}, "primaryType": "P", "domain": {}, "message": {}});
        assert_eq!(not_typed_data(&document), None);
        assert_eq!(not_typed_data(&json!([])).unwrap(), "not a JSON object");
        assert_eq!(
            not_typed_data(&json!({"types": {}, "message": {}})).unwrap(),
            "no `primaryType`, `domain`"
        );
    }

    #[test]
    fn a_document_is_not_searched_inside() {
        let document =
            json!({"types": {}, "primaryType": "P", "message": {"types": {}, "primaryType": "Q"}});
        assert!(typed_data_pointers(&document).is_empty());
        assert!(typed_data_pointers(&json!({"a": 1})).is_empty());
    }

    #[test]
    fn a_bad_key_is_not_quoted_in_the_error() {
        let secret = "0xzz0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
        let error = format!("{:?}", parse_key(secret, "VAR").unwrap_err());
        assert!(!error.contains("zz") && !error.contains("0974"), "{error}");
        assert!(error.contains("VAR"), "{error}");
        let signer = parse_key(&format!("  {KEY}\n"), "VAR").unwrap();
        assert_eq!(signer.address().to_string(), "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    }

    #[test]
    fn the_output_is_hex_or_one_line_of_json() {
        let signer: PrivateKeySigner = KEY.parse().unwrap();
        let digest = B256::repeat_byte(0x11);
        let signature = signer.sign_hash_sync(&digest).unwrap();

        let bare = render(&signature, signer.address(), digest, false);
        assert_eq!(bare.len(), 2 + 130);
        assert!(bare.ends_with("1b") || bare.ends_with("1c"), "v is 27 or 28: {bare}");
        assert_eq!(bare.parse::<Signature>().unwrap(), signature);

        let line = render(&signature, signer.address(), digest, true);
        assert!(!line.contains('\n'));
        let json: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["signer"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
        assert_eq!(json["digest"], digest.to_string());
        assert_eq!(json["signature"], bare);
    }
}
