//! docs/governance.md's walkthrough, run as written against the real `pactum dev` (see
//! `support::docs_page`): a policy, checks that escalate, block as duplicates and pass a cap, an
//! owner's decision, a halt and the audit log, a mandate whose token is refused once it is
//! revoked, a transfer validated and paid from the agent's own wallet, a payment signed with
//! `pactum sign` that confirms with a receipt that verifies, each step failing the script on a
//! wrong status.
#![cfg(unix)]

use crate::support::docs_page::Dev;

/// The page under test, relative to the crate root.
const PAGE: &str = "docs/governance.md";

#[test]
fn the_governance_walkthrough_runs_as_written_against_pactum_dev() {
    let dev = Dev::start("pactum-governance-doc");
    let (status, stdout, report) = dev.run_page(PAGE);
    assert!(status.is_some_and(|s| s.success()), "{report}");
    for line in [
        "policy pol_",
        "refused: invalid_policy on rule cap",
        "escalate: Refund of $300.00 exceeds the escalation threshold of $200.00.",
        "again: block (duplicate_request)",
        "big: block (per_tx_limit_exceeded, classified as spend)",
        "approval rejected",
        "while halted: block (agent_halted)",
        "mandate active: 50000 cents left",
        "token after revocation: mandate_revoked",
        "payment confirmed: 15000000 base units, receipt payment",
        "payment receipt valid: true",
        "governance walkthrough complete: 7 decisions audited",
        "allowed: true, holding rsv_",
        "intent confirmed: matched, hold captured",
        "the same transaction again: tx_hash_already_used",
    ] {
        assert!(stdout.contains(line), "missing {line:?}: {report}");
    }
    let dir = dev.dir.clone();
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}
