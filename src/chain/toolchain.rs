//! Finds the pinned local-chain binaries (anvil, forge, cast).
//!
//! Order: the `PACTUM_<NAME>_BIN` variable, then the npm-pinned copy in `anvil/node_modules/.bin`
//! (relative to the working directory, then to this crate's source tree), then `PATH`, so that
//! users who installed Foundry with foundryup are served too.

use std::path::{Path, PathBuf};

/// Where to run `name` from (`"anvil"`, `"forge"` or `"cast"`).
pub fn binary(name: &str) -> PathBuf {
    let var = format!("PACTUM_{}_BIN", name.to_ascii_uppercase());
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let pinned = Path::new("anvil").join("node_modules").join(".bin").join(name);
    [PathBuf::from("."), PathBuf::from(env!("CARGO_MANIFEST_DIR"))]
        .into_iter()
        .map(|root| root.join(&pinned))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Where to run anvil from.
pub fn anvil() -> PathBuf {
    binary("anvil")
}
