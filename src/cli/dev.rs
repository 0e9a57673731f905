//! `pactum dev`: a complete local Pactum from a fresh clone. Installs the pinned toolchain if it
//! is missing, starts anvil, deploys the contracts, funds a demo buyer and a demo smart-wallet
//! (ERC-1271) buyer, creates an owner credential and three demo agents, and serves the API on SQLite, printing everything a script
//! needs (and writing it as JSON with `--out`). Ctrl-c or SIGTERM, even during start-up, stops
//! the service and anvil with it.

use std::io::ErrorKind;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::U256;
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::chain::{deploy, toolchain};
use pactum::config::ServeConfig;
use pactum::escrow::bindings::{MockSmartWallet, MockUSDC};
use pactum::money::TokenAmount;
use pactum::secret::Secret;
use pactum::service::{Service, ServiceError};
use pactum::store::{Store, agents};
use pactum::time::now;
use serde_json::{Value, json};

/// Arguments of `pactum dev`.
#[derive(Debug, clap::Args)]
pub(crate) struct DevArgs {
    /// Port of the local chain on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8545)]
    pub(crate) rpc_port: u16,

    /// Port of the API on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub(crate) port: u16,

    /// Seconds between blocks on the local chain.
    #[arg(long, default_value_t = 1)]
    pub(crate) block_time: u64,

    /// Where the SQLite database goes (recreated on every start: the chain is new too).
    #[arg(long, default_value = "target/pactum-dev/pactum.db")]
    pub(crate) database: PathBuf,

    /// Also write the URLs, addresses and credentials as JSON to this file, once everything is
    /// up; it is removed on start and on exit, so a file that exists describes a running stack.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
}

/// Demo USDC minted to each buyer's wallet.
const DEMO_USDC: u64 = 1_000_000 * 1_000_000;
/// The fixed receipt key of the local stack (a dev-only key, never used on a real chain), so
/// receipts keep verifying across `pactum dev` restarts.
const DEV_RECEIPT_KEY: &str = "0x5eceb7f3a1d2c4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f";

/// Runs the local stack until ctrl-c or SIGTERM, then stops the service and anvil.
pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    // Installed before anything starts: a signal during the start-up must still stop anvil.
    let mut stop = std::pin::pin!(super::serve::shutdown_signal());
    if let Some(out) = &args.out {
        remove_if_present(out)?;
    }
    check_port(args.rpc_port, "the local chain", "--rpc-port")?;
    check_port(args.port, "the API", "--port")?;
    if args.port == args.rpc_port && args.port != 0 {
        bail!("--port and --rpc-port are both {}; the API and the chain need one each", args.port);
    }
    let anvil_bin = ensure_toolchain()?;
    let mut anvil = Anvil::at(&anvil_bin)
        .host(Ipv4Addr::LOCALHOST.to_string())
        .port(args.rpc_port)
        .block_time(args.block_time)
        .try_spawn()
        .with_context(|| format!("starting {} on port {}", anvil_bin.display(), args.rpc_port))?;

    let (service, summary) = tokio::select! {
        started = start(&args, &anvil) => started?,
        () = &mut stop => {
            eprintln!("pactum dev: stopped while starting");
            return Ok(());
        }
    };
    let summary = serde_json::to_string_pretty(&summary)?;
    println!("{summary}");
    if let Some(out) = &args.out {
        write_atomically(out, &summary)?;
    }
    eprintln!("pactum dev is running; ctrl-c stops it (the chain and its data go with it)");

    let mut anvil_died = false;
    service
        .run_until(async {
            tokio::select! {
                () = &mut stop => {}
                () = exited(&mut anvil) => anvil_died = true,
            }
        })
        .await;
    if let Some(out) = &args.out {
        remove_if_present(out)?;
    }
    if anvil_died {
        bail!("anvil exited on its own; the service was stopped");
    }
    Ok(())
}

/// Deploys the contracts, funds the buyers, creates the owner credential and the demo agents,
/// and starts the service; returns it with the summary printed for scripts.
async fn start(args: &DevArgs, anvil: &AnvilInstance) -> anyhow::Result<(Service, Value)> {
    let keys: Vec<PrivateKeySigner> =
        anvil.keys().iter().map(|k| PrivateKeySigner::from(k.clone())).collect();
    let (deployer, buyer, seller, relayer) =
        (keys[0].clone(), keys[1].clone(), keys[2].clone(), keys[3].clone());
    // The smart-wallet buyer: a contract wallet whose signatures are its owner's, checked by
    // the escrow through ERC-1271 (docs/smart-wallet.md).
    let smart_owner = keys[4].clone();
    let fee_recipient = keys[9].address();
    let roles = deploy::LocalRoles {
        deployer: deployer.address(),
        // Dev account 8 holds the mock USDC proxy, which its admin may not call through.
        usdc_proxy_admin: keys[8].address(),
        fee_recipient,
    };
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(deployer))
        .connect_http(anvil.endpoint_url())
        .erased();
    let deployment = deploy::deploy_local(&provider, roles).await.context("deploying")?;
    // Governed payments relayed together go through one `TransferBatch` transaction.
    let transfer_batch =
        deploy::deploy_transfer_batch(&provider).await.context("deploying TransferBatch")?;
    MockUSDC::new(deployment.usdc, &provider)
        .mint(buyer.address(), U256::from(DEMO_USDC))
        .send()
        .await?
        .get_receipt()
        .await
        .context("minting the buyer's demo USDC")?;
    let smart_wallet = *MockSmartWallet::deploy(&provider, smart_owner.address())
        .await
        .context("deploying the demo smart wallet")?
        .address();
    MockUSDC::new(deployment.usdc, &provider)
        .mint(smart_wallet, U256::from(DEMO_USDC))
        .send()
        .await?
        .get_receipt()
        .await
        .context("minting the smart wallet's demo USDC")?;

    if let Some(dir) = args.database.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for suffix in ["", "-wal", "-shm"] {
        remove_if_present(Path::new(&format!("{}{suffix}", args.database.display())))?;
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
    let (agent, key) = agents::new_agent(
        account.id.clone(),
        "demo-smart-buyer",
        Some("Demo buyer agent paying from a smart wallet".into()),
        vec!["usage".into()],
        Environment::Test,
        now(),
    );
    agents::insert_agent(&mut tx, &agent, &key.hash()).await?;
    demo_agents.insert(
        "smart_buyer".into(),
        json!({
            "id": agent.id,
            "api_key": key.reveal(),
            "wallet_address": smart_wallet.to_checksum(None),
            "owner_address": smart_owner.address().to_checksum(None),
            "owner_private_key": smart_owner.to_bytes().to_string(),
        }),
    );
    tx.commit().await?;
    store.close().await;

    let config = ServeConfig {
        database_url: database_url.clone(),
        listen: (Ipv4Addr::LOCALHOST, args.port).into(),
        max_body_bytes: 65_536,
        request_timeout_secs: 30,
        owner_key: Some(Secret::new(owner_key.reveal())),
        environment: Some(Environment::Test),
        rpc_url: anvil.endpoint(),
        rpc: pactum::chain::rpc::RpcSettings::default(),
        escrow_address: deployment.usage_escrow,
        token_name: "USD Coin".into(),
        confirmations: 2,
        poll_interval_ms: 250,
        relayer_poll_interval_ms: None,
        start_block: Some(0),
        relayer_private_keys: vec![Secret::new(relayer.to_bytes().to_string())],
        transfer_batch_address: Some(transfer_batch),
        relayer_batch_max: 50,
        relayer_batch_wait_ms: None,
        relayer_max_fee_per_gas_gwei: 500,
        relayer_replace_after_blocks: 3,
        relayer_max_in_flight: 16,
        authorization_ttl_secs: 3_600,
        idempotency_ttl_secs: 86_400,
        receipt_private_key: Some(Secret::new(DEV_RECEIPT_KEY)),
        faucet_private_key: None,
        rate_limit_window_secs: 60,
        rate_limit_read: 0,
        rate_limit_write: 0,
        rate_limit_sponsored: 0,
        rate_limit_management: 0,
        rate_limit_checks: 0,
        rate_limit_governance: 0,
        rate_limit_registration: 0,
        rate_limit_registration_window_secs: 3_600,
        approval_ttl_secs: 86_400,
        sanctions_oracle: None,
        denylist: None,
        screening_fail_open: false,
        activation_window_secs: 86_400,
        expiry_secs: 30 * 86_400,
        close_window_secs: 86_400,
        infra_fee_bps: 200,
        infra_fee_fixed: TokenAmount::from_base_units(3_000),
        infra_fee_minimum: TokenAmount::from_base_units(100_000),
        early_claim_threshold: TokenAmount::from_base_units(10_000_000),
        ready_max_lag_blocks: 20,
        signer_min_balance_wei: 10_000_000_000_000_000,
        signer_balance_interval_secs: 60,
        webhooks: pactum::webhooks::WebhookSettings {
            allow_private_urls: true,
            ..Default::default()
        },
        registration: Default::default(),
        console: Default::default(),
        go_no_go: pactum::gonogo::GoNoGoSettings {
            support_contacts: vec!["pactum dev operator <operator@localhost>".into()],
            support_logs: Some("stderr of `pactum dev`".into()),
            // Often, so a go/no-go soon after start-up has history to show.
            readiness_record_secs: 5,
            ..Default::default()
        },
    };
    let service = Service::start(config).await.map_err(|e| {
        let context = match e {
            ServiceError::Listen(_) => {
                format!("the API cannot listen on port {} (choose another with --port)", args.port)
            }
            _ => "starting the service".to_owned(),
        };
        anyhow::Error::new(e).context(context)
    })?;
    let summary = json!({
        "api_url": format!("http://{}", service.local_addr()),
        "rpc_url": anvil.endpoint(),
        "chain_id": deployment.chain_id,
        "database_url": database_url,
        "contracts": {
            "usage_escrow": deployment.usage_escrow.to_checksum(None),
            "usdc": deployment.usdc.to_checksum(None),
            "usdc_implementation": deployment.usdc_implementation.to_checksum(None),
            "sanctions_oracle": deployment.sanctions_oracle.to_checksum(None),
            "transfer_batch": transfer_batch.to_checksum(None),
        },
        "fee_recipient": fee_recipient.to_checksum(None),
        "relayer": relayer.address().to_checksum(None),
        "owner_key": owner_key.reveal(),
        "agents": demo_agents,
    });
    Ok((service, summary))
}

/// Fails, naming the flag that changes it, when `port` on 127.0.0.1 is taken; 0 (any free
/// port) always passes. Checked up front so a clash is reported before anvil and the deployment
/// rather than as a failed start of one of them.
fn check_port(port: u16, what: &str, flag: &str) -> anyhow::Result<()> {
    if port == 0 {
        return Ok(());
    }
    match std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AddrInUse => bail!(
            "port {port} for {what} is already in use (another `pactum dev` or anvil?); \
             choose another with {flag}"
        ),
        Err(e) => Err(e).with_context(|| format!("cannot listen on port {port} for {what}")),
    }
}

/// Completes when the anvil process has exited, checked twice a second.
async fn exited(anvil: &mut AnvilInstance) {
    while let Ok(None) = anvil.child_mut().try_wait() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

/// Writes `text` to `path` through a temporary file beside it, so a reader never sees half of it.
fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{text}\n"))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Removes the file at `path`; one that is not there is fine.
fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}
