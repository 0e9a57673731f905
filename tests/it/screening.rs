//! Wallet screening against the mock sanctions oracle on a real anvil and an operator denylist.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::DevChain;
use alloy::primitives::Address;
use alloy::providers::{Provider, ProviderBuilder};
use pactum::screening::{
    OracleStatus, Screener, ScreeningConfig, ScreeningError, ScreeningSource, WalletScreening,
};

/// A denylist file of its own for each use, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "pactum-screening-{}-{}.txt",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn with_oracle(chain: &DevChain) -> ScreeningConfig {
    ScreeningConfig { oracle: Some(*chain.oracle.address()), ..ScreeningConfig::default() }
}

async fn set_reverting(chain: &DevChain, reverting: bool) {
    chain.oracle.setReverting(reverting).send().await.unwrap().get_receipt().await.unwrap();
}

fn clear(address: Address) -> WalletScreening {
    WalletScreening { address, sanctioned: false, source: None }
}

#[tokio::test]
async fn clean_wallets_pass() {
    let chain = DevChain::start().await;
    let screener = Screener::new(chain.provider.clone(), &with_oracle(&chain)).unwrap();
    let (buyer, seller) = (chain.buyer.address(), chain.seller.address());
    let report = screener.screen(&[buyer, seller]).await.unwrap();
    assert_eq!(report.wallets, vec![clear(buyer), clear(seller)]);
    assert_eq!(report.oracle, OracleStatus::Checked);
    assert!(report.sanctioned().is_empty());
    assert!(report.checked_at > 1_600_000_000);
}

#[tokio::test]
async fn a_wallet_on_the_oracles_list_is_flagged() {
    let chain = DevChain::start().await;
    let (buyer, seller) = (chain.buyer.address(), chain.seller.address());
    chain
        .oracle
        .addToSanctionsList(vec![seller])
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let screener = Screener::new(chain.provider.clone(), &with_oracle(&chain)).unwrap();
    let report = screener.screen(&[buyer, seller]).await.unwrap();
    assert_eq!(report.sanctioned(), vec![seller]);
    assert_eq!(report.wallets[1].source, Some(ScreeningSource::Oracle));
    assert_eq!(report.oracle, OracleStatus::Checked);
    assert_eq!(serde_json::to_value(&report).unwrap()["wallets"][1]["source"], "oracle");
}

#[tokio::test]
async fn a_denylisted_wallet_is_flagged_without_the_oracle() {
    let chain = DevChain::start().await;
    let (buyer, seller) = (chain.buyer.address(), chain.seller.address());
    let file = TempFile::new(&format!("# operator list\n{}\n", buyer.to_string().to_lowercase()));
    let config = ScreeningConfig { denylist: Some(file.0.clone()), ..ScreeningConfig::default() };
    let screener = Screener::new(chain.provider.clone(), &config).unwrap();
    let report = screener.screen(&[buyer, seller]).await.unwrap();
    assert_eq!(report.sanctioned(), vec![buyer]);
    assert_eq!(report.wallets[0].source, Some(ScreeningSource::Denylist));
    assert_eq!(report.oracle, OracleStatus::NotConfigured);

    // The operator adds the seller; the next screening sees it without a restart.
    std::fs::write(&file.0, format!("{buyer}\n{seller} # added later\n")).unwrap();
    let report = screener.screen(&[buyer, seller]).await.unwrap();
    assert_eq!(report.sanctioned(), vec![buyer, seller]);
}

#[tokio::test]
async fn the_denylist_is_named_first_when_both_lists_have_a_wallet() {
    let chain = DevChain::start().await;
    let seller = chain.seller.address();
    chain
        .oracle
        .addToSanctionsList(vec![seller])
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    let file = TempFile::new(&format!("{seller}\n"));
    let config = ScreeningConfig { denylist: Some(file.0.clone()), ..with_oracle(&chain) };
    let screener = Screener::new(chain.provider.clone(), &config).unwrap();
    let report = screener.screen(&[seller]).await.unwrap();
    assert_eq!(report.wallets[0].source, Some(ScreeningSource::Denylist));
    assert_eq!(report.oracle, OracleStatus::Checked);
}

#[tokio::test]
async fn an_invalid_denylist_fails_at_start_up_naming_the_line() {
    let chain = DevChain::start().await;
    let file = TempFile::new("# ok\n\n0xnot-an-address\n");
    let config = ScreeningConfig { denylist: Some(file.0.clone()), ..ScreeningConfig::default() };
    let err = Screener::new(chain.provider.clone(), &config).expect_err("refused");
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[tokio::test]
async fn a_reverting_oracle_fails_closed() {
    let chain = DevChain::start().await;
    set_reverting(&chain, true).await;
    let screener = Screener::new(chain.provider.clone(), &with_oracle(&chain)).unwrap();
    let err = screener.screen(&[chain.buyer.address()]).await.unwrap_err();
    assert!(
        matches!(&err, ScreeningError::Unavailable(reason) if reason.contains("OracleDown()")),
        "{err}"
    );
}

#[tokio::test]
async fn a_reverting_oracle_fail_open_is_reported_unavailable() {
    let chain = DevChain::start().await;
    set_reverting(&chain, true).await;
    let (buyer, seller) = (chain.buyer.address(), chain.seller.address());
    let file = TempFile::new(&format!("{seller}\n"));
    let config = ScreeningConfig {
        denylist: Some(file.0.clone()),
        fail_closed: false,
        ..with_oracle(&chain)
    };
    let screener = Screener::new(chain.provider.clone(), &config).unwrap();
    let report = screener.screen(&[buyer, seller]).await.unwrap();
    assert_eq!(report.oracle, OracleStatus::Unavailable);
    // The denylist still applies.
    assert_eq!(report.sanctioned(), vec![seller]);
    assert_eq!(serde_json::to_value(&report).unwrap()["oracle"], "unavailable");

    set_reverting(&chain, false).await;
    assert_eq!(screener.screen(&[buyer]).await.unwrap().oracle, OracleStatus::Checked);
}

#[tokio::test]
async fn an_unreachable_node_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let provider = ProviderBuilder::new().connect_http(url.parse().unwrap()).erased();
    let config = ScreeningConfig { oracle: Some(Address::repeat_byte(1)), ..Default::default() };
    let screener = Screener::new(provider.clone(), &config).unwrap();
    let err = screener.screen(&[Address::repeat_byte(2)]).await.unwrap_err();
    assert!(matches!(err, ScreeningError::Unavailable(_)), "{err}");

    let fail_open =
        Screener::new(provider, &ScreeningConfig { fail_closed: false, ..config }).unwrap();
    let report = fail_open.screen(&[Address::repeat_byte(2)]).await.unwrap();
    assert_eq!(report.oracle, OracleStatus::Unavailable);
    assert!(report.sanctioned().is_empty());
}

#[tokio::test]
async fn an_oracle_address_without_code_is_unavailable() {
    let chain = DevChain::start().await;
    let config = ScreeningConfig { oracle: Some(Address::repeat_byte(0x77)), ..Default::default() };
    let screener = Screener::new(chain.provider.clone(), &config).unwrap();
    let err = screener.screen(&[chain.buyer.address()]).await.unwrap_err();
    assert!(matches!(err, ScreeningError::Unavailable(_)), "{err}");
}
