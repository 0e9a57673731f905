//! `pactum serve` as a library call: the HTTP API, the relayer worker with one actor per
//! signer, the chain watcher and the webhook dispatcher, as supervised tasks sharing one store,
//! with graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::agreement::ids::{Environment, SecretKey};
use crate::api::{self, AppState, Shared};
use crate::chain::context::{ChainContext, ChainError};
use crate::config::ServeConfig;
use crate::relayer::actors::SignerFaults;
use crate::relayer::balance::BalanceMonitor;
use crate::relayer::signer::Limits;
use crate::relayer::worker::Worker;
use crate::screening::{Screener, ScreeningConfig, ScreeningError};
use crate::store::{Store, StoreError, agents};
use crate::time::now;
use crate::watcher::Watcher;
use crate::webhooks::dispatcher::Dispatcher;

/// Base mainnet's chain id: keys there are `live`.
const BASE_MAINNET: u64 = 8453;
/// How long shutdown waits for tasks before abandoning them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The store could not be opened or migrated.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The chain or the escrow deployment could not be read.
    #[error("chain: {0}")]
    Chain(#[from] ChainError),
    /// Screening could not be set up (e.g. a bad denylist file).
    #[error("screening: {0}")]
    Screening(#[from] ScreeningError),
    /// The receipt key is missing or does not parse.
    #[error("receipts: {0}")]
    ReceiptKey(#[from] crate::receipts::ReceiptKeyError),
    /// A setting is out of its allowed range.
    #[error("config: {0}")]
    Config(#[from] crate::config::InvalidSetting),
    /// A relayer key does not parse.
    #[error("relayer key #{0} is not a valid private key")]
    RelayerKey(usize),
    /// The faucet key does not parse (the key itself is never printed).
    #[error("PACTUM_FAUCET_PRIVATE_KEY is not a valid private key")]
    FaucetKey,
    /// The listen address is taken or not allowed.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// A running service.
#[derive(Debug)]
pub struct Service {
    local_addr: SocketAddr,
    state: AppState,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<(&'static str, bool)>,
    faults: SignerFaults,
}

impl Service {
    /// Opens the store (applying migrations), reads the escrow deployment, and starts the API,
    /// the relayer and the watcher.
    pub async fn start(config: ServeConfig) -> Result<Service, ServiceError> {
        config.validate()?;
        let signers = config
            .relayer_private_keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                key.expose().parse::<PrivateKeySigner>().map_err(|_| ServiceError::RelayerKey(i))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let store = Store::connect(&config.database_url).await?;
        let mut chain = ChainContext::connect(
            &config.rpc_url,
            &config.rpc,
            config.escrow_address,
            &config.token_name,
        )
        .await?;
        // The watcher reads a head each poll: one is fresh for three polls (at least 2 s).
        chain.head = crate::chain::head::HeadWatch::new(
            (config.poll_interval() * 3).max(Duration::from_secs(2)),
        );
        let environment = config.environment.unwrap_or(if chain.chain_id == BASE_MAINNET {
            Environment::Live
        } else {
            Environment::Test
        });
        let operator_account = match &config.owner_key {
            Some(owner_key) => {
                let mut tx = store.begin().await?;
                let hash = SecretKey::from_presented(owner_key.expose()).hash();
                let account = agents::ensure_account(&mut tx, "operator", &hash, now()).await?;
                tx.commit().await.map_err(StoreError::from)?;
                Some(account.id)
            }
            None => None,
        };
        let screener = Screener::new(
            chain.provider.clone(),
            &ScreeningConfig {
                oracle: Some(config.sanctions_oracle.unwrap_or(chain.sanctions_oracle)),
                denylist: config.denylist.clone(),
                fail_closed: !config.screening_fail_open,
            },
        )?;
        let receipt_key = crate::receipts::ReceiptKey::from_setting(
            config.receipt_private_key.as_ref(),
            chain.chain_id,
        )?;
        let (feed, inbox) = crate::relayer::feed::channel();
        let faucet = config
            .faucet_private_key
            .as_ref()
            .map(|key| key.expose().parse::<alloy::signers::local::PrivateKeySigner>())
            .transpose()
            .map_err(|_| ServiceError::FaucetKey)?;
        let listener = TcpListener::bind(config.listen).await?;
        let local_addr = listener.local_addr()?;
        let instance = instance_name();
        let state = AppState(Arc::new(Shared {
            operator_account,
            faucet,
            store: store.clone(),
            chain: chain.clone(),
            screener,
            policy: config.terms_policy(),
            environment,
            relayer: feed,
            max_body_bytes: config.max_body_bytes,
            request_timeout: std::time::Duration::from_secs(config.request_timeout_secs),
            webhooks: config.webhooks.clone(),
            authorization_ttl: config.authorization_ttl_secs,
            receipt_signer: receipt_key.address(),
            go_no_go: crate::api::go_no_go::Equipment {
                receipt_key: receipt_key.clone(),
                settings: config.go_no_go.clone(),
                database_url: crate::secret::Secret::new(config.database_url.clone()),
                self_url: self_url(local_addr),
                instance: instance.clone(),
            },
            rate_limits: config.rate_limits(),
            idempotency_ttl: config.idempotency_ttl_secs,
            ready_max_lag_blocks: config.ready_max_lag_blocks,
            confirmations: config.confirmations,
            early_claim_threshold: config.early_claim_threshold,
            approval_ttl: config.approval_ttl_secs,
            checks: crate::api::check_queue::CheckQueue::start(
                store.clone(),
                config.approval_ttl_secs,
            ),
            credentials_seen: Default::default(),
            read_model: Default::default(),
            wallet_balances: Default::default(),
            gas_balances: Default::default(),
            risk_verdicts: Default::default(),
            registration: config.registration.clone(),
            console: config.console.clone(),
            relayer_addresses: signers.iter().map(|s| s.address()).collect(),
        }));

        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let router = api::app(state.clone());
        let mut http_shutdown = shutdown_rx.clone();
        let max_body_bytes = config.max_body_bytes;
        tasks.spawn(async move {
            crate::serve::serve(listener, router, max_body_bytes, async move {
                let _ = http_shutdown.wait_for(|stop| *stop).await;
            })
            .await;
            ("http", true)
        });

        let balances = BalanceMonitor {
            provider: chain.provider.clone(),
            signers: signers.iter().map(|s| s.address()).collect(),
            minimum: alloy::primitives::U256::from(config.signer_min_balance_wei),
            interval: Duration::from_secs(config.signer_balance_interval_secs.max(1)),
        };
        tasks.spawn(supervise("balances", shutdown_rx.clone(), move |stop| {
            balances.clone().run(stop)
        }));
        let faults = SignerFaults::default();
        let worker = Worker {
            store: store.clone(),
            provider: chain.provider.clone(),
            keys: signers,
            limits: Limits {
                chain_id: chain.chain_id,
                max_fee_per_gas: u128::from(config.relayer_max_fee_per_gas_gwei) * 1_000_000_000,
                max_in_flight: config.relayer_max_in_flight.max(1),
            },
            faults: faults.clone(),
            inbox,
            head: chain.head.clone(),
            poll: config.relayer_poll_interval(),
            batch_max: config.relayer_batch_max.max(1),
            payment_batcher: config.transfer_batch_address,
            batch_wait: config.relayer_batch_wait_ms.map(std::time::Duration::from_millis),
            replace_after_blocks: config.relayer_replace_after_blocks.max(1),
            instance,
        };
        tasks.spawn(supervise("relayer", shutdown_rx.clone(), move |stop| {
            let worker = worker.clone();
            async move { worker.run(stop).await.map_err(|e| e.to_string()) }
        }));
        let dispatcher = Dispatcher {
            store: store.clone(),
            settings: config.webhooks.clone(),
            poll: config.poll_interval(),
        };
        tasks.spawn(supervise("webhooks", shutdown_rx.clone(), move |stop| {
            let dispatcher = dispatcher.clone();
            async move { dispatcher.run(stop).await.map_err(|e| e.to_string()) }
        }));
        let recorder = crate::api::go_no_go::Recorder {
            state: state.clone(),
            interval: Duration::from_secs(config.go_no_go.readiness_record_secs.max(1)),
        };
        tasks.spawn(supervise("readiness", shutdown_rx.clone(), move |stop| {
            recorder.clone().run(stop)
        }));
        let sweeper =
            crate::expiry::ApprovalSweeper { store: store.clone(), poll: config.poll_interval() };
        tasks.spawn(supervise("approvals", shutdown_rx.clone(), move |stop| {
            sweeper.clone().run(stop)
        }));
        if store.backend() == crate::store::Backend::Sqlite {
            let checkpoints = store.clone();
            tasks.spawn(supervise("checkpoint", shutdown_rx.clone(), move |stop| {
                checkpoints.clone().run_checkpoints(stop)
            }));
        }
        let watcher = Watcher {
            store: store.clone(),
            chain: chain.clone(),
            confirmations: config.confirmations,
            poll: config.poll_interval(),
            start_block: config.start_block,
            receipt_key,
            block_reads: Default::default(),
        };
        tasks.spawn(supervise("watcher", shutdown_rx, move |stop| {
            let watcher = watcher.clone();
            async move { watcher.run(stop).await.map_err(|e| e.to_string()) }
        }));
        tracing::info!(
            %local_addr,
            chain_id = chain.chain_id,
            escrow = %chain.escrow,
            receipt_signer = %state.receipt_signer,
            "pactum serving"
        );
        Ok(Service { local_addr, state, shutdown, tasks, faults })
    }

    /// Where the API listens.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared state (store, chain context) the tasks use.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The relayer's test-only fault hook: makes a signer actor panic on its next request.
    #[doc(hidden)]
    pub fn signer_faults(&self) -> &SignerFaults {
        &self.faults
    }

    /// Runs until `signal` completes or a task ends on its own, then shuts down.
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) {
        tokio::select! {
            _ = signal => tracing::info!("shutdown requested"),
            Some(ended) = self.tasks.join_next() => {
                tracing::error!(?ended, "a task stopped on its own; shutting down");
            }
        }
        self.shutdown().await;
    }

    /// Asks every task to stop and waits (up to a grace period) for them.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("tasks did not stop in time; aborting them");
            self.tasks.abort_all();
        }
        self.state.store.close().await;
    }
}

/// Runs `task` until `stop` turns true, restarting it (after a growing pause, up to 30 s) when
/// it fails or panics, so one bad RPC answer does not take the service down.
async fn supervise<F, Fut>(
    name: &'static str,
    stop: watch::Receiver<bool>,
    task: F,
) -> (&'static str, bool)
where
    F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let mut pause = Duration::from_millis(100);
    loop {
        let outcome = tokio::spawn(task(stop.clone())).await;
        if *stop.borrow() {
            return (name, true);
        }
        match outcome {
            Ok(Ok(())) => return (name, true),
            Ok(Err(error)) => tracing::error!(task = name, %error, "task failed; restarting"),
            Err(panic) => tracing::error!(task = name, %panic, "task panicked; restarting"),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

/// This service's name in job leases: host, process and a per-process count, so two services
/// in one process (tests) lease apart too.
fn instance_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static STARTED: AtomicU32 = AtomicU32::new(0);
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{n}", hostname(), std::process::id())
}

/// The URL this service's own API answers on, for the go/no-go canary: the listen address,
/// with a wildcard address replaced by the loopback address of its family.
fn self_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "pactum".into())
}
