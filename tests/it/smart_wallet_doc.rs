//! docs/smart-wallet.md, run as written against the real `pactum dev` (see
//! `support::docs_page`). The page ends with a check of its own (an activation and a voucher
//! signed by the smart wallet's owner, both checked by the escrow through ERC-1271), so the test
//! fails when the recipe or the page goes wrong.
#![cfg(unix)]

use crate::support::docs_page::Dev;

/// The page under test, relative to the crate root.
const PAGE: &str = "docs/smart-wallet.md";

/// What the page's last block prints when everything worked.
const DONE: &str = "smart wallet recipe complete:";

#[test]
fn the_smart_wallet_recipe_runs_as_written_against_pactum_dev() {
    let dev = Dev::start("pactum-smart-wallet");
    let (status, stdout, report) = dev.run_page(PAGE);
    assert!(status.is_some_and(|s| s.success()) && stdout.contains(DONE), "{report}");
    assert!(stdout.contains("0x1626ba7e"), "the wallet accepts its owner's signature: {report}");
    let dir = dev.dir.clone();
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}
