//! `pactum reconcile` and `GET /v1/reconciliation` against a real anvil and a real server:
//! clean after a normal life, a store row edited behind the service's back, an escrow moved
//! by a party's own wallet while the watcher was stopped (until it catches up), and a fresh
//! database pointed at a deployment that already has escrows.

use std::path::Path;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use pactum::chain::context::ChainContext;
use pactum::escrow::bindings::UsageEscrow;
use pactum::reconcile::{self, Options, ReadSettings, Report};
use pactum::store::Store;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::service::{Harness, OWNER_KEY, unique_dir};
use crate::support::settlement::{action_final, record, sign_voucher, sponsor};

/// `pactum reconcile` as a process against `database_url` and the harness's chain: its exit
/// code, its JSON report (stdout) and its summary (stderr).
async fn cli(h: &Harness, database_url: &str) -> (i32, Value, String) {
    let (code, stdout, stderr) = run_cli(h, database_url, *h.chain.escrow.address()).await;
    let report = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: stdout {stdout:?}, stderr {stderr}"));
    (code, report, stderr)
}

/// `pactum reconcile` against `escrow` on the harness's chain: exit code, stdout, stderr.
async fn run_cli(h: &Harness, database_url: &str, escrow: Address) -> (i32, String, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pactum"))
        .arg("reconcile")
        .env("PACTUM_DATABASE_URL", database_url)
        .env("PACTUM_RPC_URL", h.chain.anvil.endpoint())
        .env("PACTUM_ESCROW_ADDRESS", escrow.to_string())
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.code().unwrap(), text(&output.stdout), text(&output.stderr))
}

/// The harness's SQLite database URL.
fn database_url(dir: &Path) -> String {
    format!("sqlite:{}?mode=rwc", dir.join("pactum.db").display())
}

/// A harness on `db` (Postgres) or on its own SQLite file, and the URL of its database.
async fn start_on(db: &Option<String>) -> (Harness, String) {
    let h = Harness::start_with(|config| {
        if let Some(url) = db {
            config.database_url = url.clone();
        }
    })
    .await;
    let url = h.database_url.clone();
    (h, url)
}

/// Runs `case` on SQLite, or on a fresh Postgres database (dropped after) when `postgres`.
async fn on<F: std::future::Future<Output = ()>>(
    postgres: bool,
    case: impl FnOnce(Option<String>) -> F,
) {
    if !postgres {
        return case(None).await;
    }
    let Some(url) = crate::support::databases::fresh_postgres().await else { return };
    case(Some(url.clone())).await;
    crate::support::databases::drop_postgres(&url).await;
}

/// The deployment-wide reconciliation through the library, on `database_url`.
async fn library(h: &Harness, database_url: &str) -> Report {
    let store = Store::connect(database_url).await.unwrap();
    let settings = pactum::chain::rpc::RpcSettings::default();
    let chain = ChainContext::connect(
        &h.chain.anvil.endpoint(),
        &settings,
        *h.chain.escrow.address(),
        "USD Coin",
    )
    .await
    .unwrap();
    let options = Options {
        account: None,
        at_block: None,
        confirmations: 2,
        from_block: 0,
        read: ReadSettings::default(),
    };
    let report = reconcile::run(&store, &chain, &options).await.unwrap();
    store.close().await;
    report
}

/// `GET /v1/reconciliation` as the owner.
async fn api(h: &Harness) -> Value {
    let (status, report) = h.call(Method::GET, "/v1/reconciliation", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    report
}

/// Mines one block, so the block the reconciliation reads (one below the head) includes
/// everything mined so far.
async fn mine(h: &Harness) {
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
}

/// A SQLite test and a Postgres test of one case.
macro_rules! on_both {
    ($sqlite:ident, $postgres:ident, $case:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            on(false, $case).await;
        }

        #[tokio::test]
        async fn $postgres() {
            on(true, $case).await;
        }
    };
}

fn kinds(report: &Value) -> Vec<&str> {
    report["mismatches"].as_array().unwrap().iter().map(|m| m["kind"].as_str().unwrap()).collect()
}

on_both!(
    a_settled_agreement_is_clean_and_a_row_edited_behind_the_service_is_reported,
    a_row_edited_behind_the_service_is_reported_on_postgres,
    row_edited_behind_the_service
);

async fn row_edited_behind_the_service(db: Option<String>) {
    let (mut h, url) = start_on(&db).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    record(&h, &seller, &id, 30, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;
    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &id, "initiate_close").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    h.wait_for(&buyer.key, &id, |a| a["status"] == "settled").await;

    let report = api(&h).await;
    assert_eq!(report["clean"], true, "{report}");
    assert_eq!(report["scope"], "account");
    assert_eq!(report["agreements_checked"], 1);
    assert!(report["balance"].is_null());
    // An agent's key finds no such route, as with every owner route.
    let (status, _) = h.call(Method::GET, "/v1/reconciliation", Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (code, report, stderr) = cli(&h, &url).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(report["clean"], true);
    assert_eq!(report["scope"], "deployment");
    // 70 units are the buyer's to withdraw still, beside the infra fee.
    let balance = &report["balance"];
    assert_eq!(balance["open_deposits"], (70 * 100_000).to_string(), "{report}");
    assert_eq!(balance["token_balance"], balance["expected"]);
    assert_eq!(balance["accrued_fees"], h.chain.accrued_fees().await.to_string());
    assert!(report["rpc"]["requests"].as_u64().unwrap() >= 1);
    assert!(stderr.contains("clean"), "{stderr}");

    // Behind the service's back: the store now believes 7 units were claimed.
    let store = h.service.as_ref().unwrap().state().store.clone();
    sqlx::query("UPDATE usage_agreements SET escrow_claimed_units = 7 WHERE id = $1")
        .bind(&id)
        .execute(store.reader())
        .await
        .unwrap();
    let (code, report, stderr) = cli(&h, &url).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(kinds(&report), ["claimed_units"], "{report}");
    let mismatch = &report["mismatches"][0];
    assert_eq!(mismatch["agreement_id"], id.as_str());
    assert!(mismatch["agreement_key"].as_str().unwrap().starts_with("0x"));
    assert_eq!((&mismatch["store"], &mismatch["chain"]), (&Value::from("7"), &Value::from("30")));
    assert!(stderr.contains("claimed_units") && stderr.contains("store 7 / chain 30"), "{stderr}");
    let report = api(&h).await;
    assert_eq!(report["clean"], false);
    assert_eq!(kinds(&report), ["claimed_units"], "{report}");
    h.stop().await;
}

on_both!(
    an_escrow_moved_while_the_watcher_was_stopped_is_reported_until_it_catches_up,
    an_escrow_moved_while_the_watcher_was_stopped_is_reported_on_postgres,
    moved_while_stopped
);

async fn moved_while_stopped(db: Option<String>) {
    let (mut h, url) = start_on(&db).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let store = h.service.as_ref().unwrap().state().store.clone();
    let terms = pactum::store::agreements::get(store.reader(), &id)
        .await
        .unwrap()
        .unwrap()
        .terms
        .unwrap()
        .activation();
    h.stop().await;

    // The buyer closes from its own wallet while nothing watches.
    let close = UsageEscrow::initiateCloseCall {
        terms,
        finalUnits: U256::ZERO,
        voucherSignature: Bytes::new(),
    };
    h.chain.send(h.chain.buyer.address(), close).await;
    mine(&h).await;
    let report = library(&h, &url).await;
    let found: Vec<_> = report.mismatches.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(found, ["escrow_status", "agreement_status"], "{report:#?}");
    let m = &report.mismatches[0];
    assert_eq!((m.store.as_deref(), m.chain.as_deref()), (Some("active"), Some("closing")));
    assert_eq!(m.agreement_id.as_deref(), Some(id.as_str()));

    h.restart().await;
    h.wait_for(&buyer.key, &id, |a| a["status"] == "closing").await;
    let report = api(&h).await;
    assert_eq!(report["clean"], true, "{report}");
    let (code, report, stderr) = cli(&h, &url).await;
    assert_eq!(code, 0, "{report}\n{stderr}");
    h.stop().await;
}

on_both!(
    a_fresh_database_reports_the_deployments_escrows_as_unknown_to_the_store,
    a_fresh_postgres_database_reports_the_deployments_escrows_as_unknown_to_the_store,
    fresh_database
);

async fn fresh_database(db: Option<String>) {
    let (mut h, _) = start_on(&db).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let key: B256 = h
        .call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None)
        .await
        .1["agreement_key"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    mine(&h).await;

    // A second, empty database on the same engine.
    let fresh_postgres = match &db {
        Some(_) => crate::support::databases::fresh_postgres().await,
        None => None,
    };
    let fresh = fresh_postgres
        .clone()
        .unwrap_or_else(|| database_url(&unique_dir("pactum-reconcile-fresh")));
    let (code, report, stderr) = cli(&h, &fresh).await;
    assert_eq!(code, 1, "{report}\n{stderr}");
    assert_eq!(report["agreements_checked"], 0);
    assert_eq!(kinds(&report), ["unknown_to_store"], "{report}");
    let mismatch = &report["mismatches"][0];
    assert_eq!(mismatch["agreement_key"], key.to_string());
    assert_eq!((&mismatch["store"], &mismatch["chain"]), (&Value::Null, &Value::from("active")));
    // The escrow found on-chain is counted, so the balance adds up.
    assert_eq!(report["balance"]["token_balance"], report["balance"]["expected"], "{report}");
    assert!(stderr.contains("unknown_to_store"), "{stderr}");

    // No escrow at the address: it could not run, which is not a mismatch.
    let (code, stdout, stderr) = run_cli(&h, &fresh, Address::repeat_byte(0x42)).await;
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stderr.contains("no contract at the escrow address"), "{stderr}");
    h.stop().await;
    if let Some(url) = fresh_postgres {
        crate::support::databases::drop_postgres(&url).await;
    }
}
