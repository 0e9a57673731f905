//! `pactum dev`: a complete local Pactum from a fresh clone. Installs the pinned toolchain if it
//! is missing, starts anvil, deploys the contracts, funds a demo buyer, creates an owner
//! credential and two demo agents, and serves the API on SQLite, printing everything a script
//! needs (and writing it as JSON with `--out`).

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::node_bindings::Anvil;
use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::chain::{deploy, toolchain};
use pactum::config::{Secret, ServeConfig};
use pactum::escrow::bindings::MockUSDC;
use pactum::money::TokenAmount;
use pactum::service::Service;
use pactum::store::{Store, agents, now};
use serde_json::json;

/// Arguments of `pactum dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// Port of the local chain.
    #[arg(long, default_value_t = 8545)]
    pub(crate) rpc_port: u16,

    /// Port of the API.
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,

    /// Seconds between blocks on the local chain.
    #[arg(long, default_value_t = 1)]
    pub(crate) block_time: u64,

    /// Where the SQLite database goes (recreated on every start: the chain is new too).
    #[arg(long, default_value = "target/pactum-dev/pactum.db")]
    pub(crate) database: PathBuf,

    /// Also write the URLs, addresses and credentials as JSON to this file.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// Demo USDC minted to the buyer's wallet.
const DEMO_USDC: u64 = 1_000_000 * 1_000_000;

/// Runs the local stack until ctrl-c.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    let anvil_bin = ensure_toolchain()?;
    let anvil = Anvil::at(&anvil_bin)
        .port(args.rpc_port)
        .block_time(args.block_time)
        .try_spawn()
        .with_context(|| format!("starting anvil on port {}", args.rpc_port))?;
    let keys: Vec<PrivateKeySigner> =
        anvil.keys().iter().map(|k| PrivateKeySigner::from(k.clone())).collect();
    let (deployer, buyer, seller, relayer) =
        (keys[0].clone(), keys[1].clone(), keys[2].clone(), keys[3].clone());
    let fee_recipient = keys[9].address();
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer))
        .connect_http(anvil.endpoint_url())
        .erased();
    let deployment = deploy::deploy_local(&provider, fee_recipient).await.context("deploying")?;
    MockUSDC::new(deployment.usdc, &provider)
        .mint(buyer.address(), U256::from(DEMO_USDC))
        .send()
        .await?
        .get_receipt()
        .await?;

    if let Some(dir) = args.database.parent() {
        std::fs::create_dir_all(dir)?;
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", args.database.display()));
    }
    let database_url = format!("sqlite:{}?mode=rwc", args.database.display());
    let owner_key = SecretKey::generate("ok", Environment::Test);
    let store = Store::connect(&database_url).await?;
    let mut tx = store.begin().await?;
    let account = agents::ensure_account(&mut tx, "demo", &owner_key.hash(), now()).await?;
    let mut demo_agents = serde_json::Map::new();
    for (role, wallet) in [("buyer", &buyer), ("seller", &seller)] {
        let (agent, key) = agents::new_agent(
            account.id.clone(),
            &format!("demo-{role}"),
            Some(format!("Demo {role} agent")),
            vec!["usage".into()],
            Environment::Test,
            now(),
        );
        agents::insert_agent(&mut tx, &agent, &key.hash()).await?;
        demo_agents.insert(
            role.into(),
            json!({
                "id": agent.id,
                "api_key": key.reveal(),
                "wallet_address": wallet.address().to_checksum(None),
                "private_key": wallet.to_bytes().to_string(),
            }),
        );
    }
    tx.commit().await?;
    store.close().await;

    let config = ServeConfig {
        database_url: database_url.clone(),
        listen: ([127, 0, 0, 1], args.port).into(),
        max_body_bytes: 65_536,
        owner_key: Some(Secret::new(owner_key.reveal())),
        environment: Some(Environment::Test),
        rpc_url: anvil.endpoint(),
        escrow_address: deployment.usage_escrow,
        token_name: "USD Coin".into(),
        confirmations: 2,
        poll_interval_ms: 250,
        start_block: Some(0),
        relayer_private_keys: vec![Secret::new(relayer.to_bytes().to_string())],
        sanctions_oracle: None,
        denylist: None,
        screening_fail_open: false,
        activation_window_secs: 86_400,
        expiry_secs: 30 * 86_400,
        close_window_secs: 86_400,
        infra_fee_bps: 200,
        infra_fee_fixed: TokenAmount::from_base_units(3_000),
        infra_fee_minimum: TokenAmount::from_base_units(100_000),
    };
    let service = Service::start(config).await.context("starting the service")?;
    let summary = json!({
        "api_url": format!("http://{}", service.local_addr()),
        "rpc_url": anvil.endpoint(),
        "chain_id": deployment.chain_id,
        "database_url": database_url,
        "contracts": {
            "usage_escrow": deployment.usage_escrow.to_checksum(None),
            "usdc": deployment.usdc.to_checksum(None),
            "sanctions_oracle": deployment.sanctions_oracle.to_checksum(None),
        },
        "fee_recipient": fee_recipient.to_checksum(None),
        "relayer": relayer.address().to_checksum(None),
        "owner_key": owner_key.reveal(),
        "agents": demo_agents,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(out) = &args.out {
        write_atomically(out, &serde_json::to_string_pretty(&summary)?)?;
    }
    eprintln!("pactum dev is running; ctrl-c stops it (the chain and its data go with it)");
    service.run_until(super::serve::shutdown_signal()).await;
    drop(anvil);
    Ok(())
}

/// The pinned anvil, installing the toolchain with `anvil/ensure.sh` when it is not there yet.
fn ensure_toolchain() -> anyhow::Result<PathBuf> {
    let anvil = toolchain::anvil();
    if anvil.is_file() || which(&anvil) {
        return Ok(anvil);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("anvil").join("ensure.sh");
    eprintln!("installing the pinned toolchain ({})…", script.display());
    let status = std::process::Command::new("bash").arg(&script).status()?;
    if !status.success() {
        bail!("{} failed; is npm installed?", script.display());
    }
    let anvil = toolchain::anvil();
    if !anvil.is_file() {
        bail!("anvil is still missing after {}", script.display());
    }
    Ok(anvil)
}

/// Whether a bare command name resolves on PATH.
fn which(path: &Path) -> bool {
    path.components().count() == 1
        && std::env::var_os("PATH")
            .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(path).is_file()))
}

/// Writes `text` to `path` through a temporary file, so a reader never sees half of it.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
