//! `pactum serve` configuration: flags, `PACTUM_*` environment variables and an optional TOML
//! file, parsed once (precedence: flag, then environment, then file, then default).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::Address;

use crate::agreement::ids::Environment;
use crate::agreement::terms::{TermsPolicy, check_close_window};
use crate::money::{FeeSchedule, TokenAmount};

pub use crate::secret::Secret;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    #[default]
    Text,
    /// One JSON object per line, with the fields of the spans it was logged in (a request's
    /// `request_id` among them).
    Json,
}

/// Logging settings of `pactum serve` (outside [`ServeConfig`]: logging starts before the
/// service does).
#[derive(Debug, Clone, clap::Args)]
pub struct LogConfig {
    /// Log line format: `text`, or `json` for log collectors. `RUST_LOG` sets the level.
    #[arg(
        long,
        env = "PACTUM_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text,
        help_heading = "Observability"
    )]
    pub log_format: LogFormat,
}

/// Everything `pactum serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeConfig {
    /// Database URL: `sqlite:pactum.db?mode=rwc` or `postgres://user@host/db`.
    #[arg(
        long,
        env = "PACTUM_DATABASE_URL",
        default_value = "sqlite:pactum.db?mode=rwc",
        help_heading = "Store"
    )]
    pub database_url: String,

    /// Address the HTTP API listens on (port 0 picks a free port).
    #[arg(long, env = "PACTUM_LISTEN", default_value = "127.0.0.1:8080", help_heading = "HTTP")]
    pub listen: SocketAddr,

    /// Largest request body accepted, in bytes.
    #[arg(long, env = "PACTUM_MAX_BODY_BYTES", default_value_t = 65_536, help_heading = "HTTP")]
    pub max_body_bytes: usize,

    /// Seconds a request may take before it is answered 503 `timeout`.
    #[arg(long, env = "PACTUM_REQUEST_TIMEOUT_SECS", default_value_t = 30, help_heading = "HTTP")]
    pub request_timeout_secs: u64,

    /// Owner credential of the operator's account (agents are created with it).
    #[arg(long, env = "PACTUM_OWNER_KEY", hide_env_values = true, help_heading = "HTTP")]
    pub owner_key: Option<Secret>,

    /// Key prefix environment (`pk_test_…` / `pk_live_…`); default: `live` on Base mainnet
    /// (chain 8453), `test` elsewhere.
    #[arg(long, env = "PACTUM_ENVIRONMENT", value_enum, help_heading = "HTTP")]
    pub environment: Option<Environment>,

    /// JSON-RPC endpoint of the chain.
    #[arg(
        long,
        env = "PACTUM_RPC_URL",
        default_value = "http://127.0.0.1:8545",
        help_heading = "Chain"
    )]
    pub rpc_url: String,

    /// RPC layer: per-request timeout, retries, circuit breakers.
    #[command(flatten)]
    pub rpc: crate::chain::rpc::RpcSettings,

    /// The UsageEscrow contract; its token, fee recipient and oracle are read from it.
    #[arg(long, env = "PACTUM_ESCROW_ADDRESS", help_heading = "Chain")]
    pub escrow_address: Address,

    /// The token's EIP-712 domain name.
    #[arg(long, env = "PACTUM_TOKEN_NAME", default_value = "USD Coin", help_heading = "Chain")]
    pub token_name: String,

    /// Blocks a transaction must be under before it counts as confirmed (1 = mined).
    #[arg(long, env = "PACTUM_CONFIRMATIONS", default_value_t = 2, help_heading = "Chain")]
    pub confirmations: u64,

    /// How often the watcher and the relayer look for new work, in milliseconds.
    #[arg(long, env = "PACTUM_POLL_INTERVAL_MS", default_value_t = 1_000, help_heading = "Chain")]
    pub poll_interval_ms: u64,

    /// How often the relayer scans the store for jobs this process's API did not hand it
    /// (another instance's, jobs queued again, a restart's backlog) and checks its transactions
    /// in flight, in milliseconds; default: the poll interval.
    #[arg(long, env = "PACTUM_RELAYER_POLL_INTERVAL_MS", help_heading = "Relayer")]
    pub relayer_poll_interval_ms: Option<u64>,

    /// The first block the watcher reads on a fresh database (default: the head at start).
    #[arg(long, env = "PACTUM_START_BLOCK", help_heading = "Chain")]
    pub start_block: Option<u64>,

    /// Private keys of the relayer accounts that pay gas, comma-separated.
    #[arg(
        long,
        env = "PACTUM_RELAYER_PRIVATE_KEYS",
        value_delimiter = ',',
        hide_env_values = true,
        required = true,
        help_heading = "Relayer"
    )]
    pub relayer_private_keys: Vec<Secret>,

    /// The `TransferBatch` contract relayed governed payments go through, several in one
    /// transaction (each in its own try); without it each payment is its own transaction.
    #[arg(long, env = "PACTUM_TRANSFER_BATCH_ADDRESS", help_heading = "Relayer")]
    pub transfer_batch_address: Option<alloy::primitives::Address>,

    /// Most sponsored seller claims (or governed payments) the relayer puts in one batch
    /// transaction (1 sends each alone).
    #[arg(long, env = "PACTUM_RELAYER_BATCH_MAX", default_value_t = 50, help_heading = "Relayer")]
    pub relayer_batch_max: usize,

    /// How long the relayer waits, after taking a batchable claim, for more to queue, in
    /// milliseconds. Unset: the block time the watcher measures over the transactions the keys
    /// may have in flight (62 ms for one key on 1 s blocks, 125 ms on Base's 2 s), 10–250 ms.
    #[arg(long, env = "PACTUM_RELAYER_BATCH_WAIT_MS", help_heading = "Relayer")]
    pub relayer_batch_wait_ms: Option<u64>,

    /// The most the relayer pays per gas (EIP-1559 fee cap), in gwei. Above it, a job waits
    /// (its status says so) until fees fall.
    #[arg(
        long,
        env = "PACTUM_RELAYER_MAX_FEE_PER_GAS_GWEI",
        default_value_t = 500,
        help_heading = "Relayer"
    )]
    pub relayer_max_fee_per_gas_gwei: u64,

    /// Blocks a broadcast transaction may stay unmined before the relayer replaces it with the
    /// same nonce and higher fees.
    #[arg(
        long,
        env = "PACTUM_RELAYER_REPLACE_AFTER_BLOCKS",
        default_value_t = 3,
        help_heading = "Relayer"
    )]
    pub relayer_replace_after_blocks: u64,

    /// Most unmined transactions one relayer account may have at a time, across every
    /// instance; a signer at its window gets no new job, and with every signer full jobs stay
    /// queued.
    #[arg(
        long,
        env = "PACTUM_RELAYER_MAX_IN_FLIGHT",
        default_value_t = 16,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Relayer"
    )]
    pub relayer_max_in_flight: u64,

    /// Seconds a sponsored-action authorization offered by `settlement-action-options` stays
    /// valid (its `deadline`).
    #[arg(
        long,
        env = "PACTUM_AUTHORIZATION_TTL_SECS",
        default_value_t = 3_600,
        help_heading = "Relayer"
    )]
    pub authorization_ttl_secs: u64,

    /// Seconds a response stays stored under its `Idempotency-Key` (replayed to a retry with
    /// the same key and request); after that the key may be used afresh.
    #[arg(
        long,
        env = "PACTUM_IDEMPOTENCY_TTL_SECS",
        default_value_t = 86_400,
        help_heading = "HTTP"
    )]
    pub idempotency_ttl_secs: u64,

    /// Private key (hex) of the receipt key that signs every receipt (EIP-712, "Pactum
    /// Receipts"). Required on Base mainnet; elsewhere, when unset, a key is made per process
    /// with a warning (its receipts stop verifying after a restart).
    #[arg(
        long,
        env = "PACTUM_RECEIPT_PRIVATE_KEY",
        hide_env_values = true,
        help_heading = "Receipts"
    )]
    pub receipt_private_key: Option<Secret>,

    /// Private key (hex) of a faucet wallet holding test USDC: `POST /v1/wallets/{id}/fund`
    /// moves demo funds from it (a plain token transfer it signs) instead of minting, for
    /// public test chains whose USDC cannot be minted (Base Sepolia). Used only on a test
    /// deployment on a test chain.
    #[arg(
        long,
        env = "PACTUM_FAUCET_PRIVATE_KEY",
        hide_env_values = true,
        help_heading = "Wallets"
    )]
    pub faucet_private_key: Option<Secret>,

    /// The window every rate limit is stated over, in seconds.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_WINDOW_SECS",
        default_value_t = 60,
        help_heading = "Rate limits"
    )]
    pub rate_limit_window_secs: u64,

    /// Reads (`GET`) per credential per window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_READ",
        default_value_t = 1_200,
        help_heading = "Rate limits"
    )]
    pub rate_limit_read: u32,

    /// Writes (`POST`/`PUT`/`PATCH`/`DELETE`) per credential per window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_WRITE",
        default_value_t = 300,
        help_heading = "Rate limits"
    )]
    pub rate_limit_write: u32,

    /// Sponsored actions per credential per window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_SPONSORED",
        default_value_t = 60,
        help_heading = "Rate limits"
    )]
    pub rate_limit_sponsored: u32,

    /// Agent and webhook management requests per credential per window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_MANAGEMENT",
        default_value_t = 60,
        help_heading = "Rate limits"
    )]
    pub rate_limit_management: u32,

    /// Spend checks (`/v1/checks`) per credential per window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_CHECKS",
        default_value_t = 1_200,
        help_heading = "Rate limits"
    )]
    pub rate_limit_checks: u32,

    /// Governance requests (policies, approvals, circuit breaker, audit, violations) per
    /// credential per window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_GOVERNANCE",
        default_value_t = 120,
        help_heading = "Rate limits"
    )]
    pub rate_limit_governance: u32,

    /// Self-registrations (`POST /agents/register`) per client IP address per registration
    /// window; 0 = unlimited.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_REGISTRATION",
        default_value_t = 5,
        help_heading = "Rate limits"
    )]
    pub rate_limit_registration: u32,

    /// The window the registration limit is stated over, in seconds.
    #[arg(
        long,
        env = "PACTUM_RATE_LIMIT_REGISTRATION_WINDOW_SECS",
        default_value_t = 3_600,
        help_heading = "Rate limits"
    )]
    pub rate_limit_registration_window_secs: u64,

    /// Seconds an approval waits for its owner before it expires (never longer than the
    /// activation it holds can wait).
    #[arg(
        long,
        env = "PACTUM_APPROVAL_TTL_SECS",
        default_value_t = 86_400,
        help_heading = "Governance"
    )]
    pub approval_ttl_secs: u64,

    /// Sanctions oracle to screen with (default: the one the escrow checks).
    #[arg(long, env = "PACTUM_SANCTIONS_ORACLE", help_heading = "Screening")]
    pub sanctions_oracle: Option<Address>,

    /// Operator denylist: one address per line, `#` comments; re-read when it changes.
    #[arg(long, env = "PACTUM_DENYLIST", help_heading = "Screening")]
    pub denylist: Option<PathBuf>,

    /// Let activations through when the oracle cannot be reached (default: refuse, 503).
    #[arg(long, env = "PACTUM_SCREENING_FAIL_OPEN", help_heading = "Screening")]
    pub screening_fail_open: bool,

    /// Seconds from acceptance within which the activation must be mined.
    #[arg(
        long,
        env = "PACTUM_ACTIVATION_WINDOW_SECS",
        default_value_t = 86_400,
        help_heading = "Terms"
    )]
    pub activation_window_secs: u64,

    /// Seconds from acceptance until the agreement expires.
    #[arg(long, env = "PACTUM_EXPIRY_SECS", default_value_t = 30 * 86_400, help_heading = "Terms")]
    pub expiry_secs: u64,

    /// The close window, in seconds: 3600 (1 hour) to 31536000 (365 days), the bounds the
    /// escrow contract enforces; anything else is refused at start-up.
    #[arg(
        long,
        env = "PACTUM_CLOSE_WINDOW_SECS",
        default_value_t = 86_400,
        value_parser = parse_close_window,
        help_heading = "Terms"
    )]
    pub close_window_secs: u64,

    /// Infra fee: basis points of the deposit.
    #[arg(long, env = "PACTUM_INFRA_FEE_BPS", default_value_t = 200, help_heading = "Terms")]
    pub infra_fee_bps: u32,

    /// Infra fee: fixed part in token base units (3000 = $0.003).
    #[arg(long, env = "PACTUM_INFRA_FEE_FIXED", default_value = "3000", help_heading = "Terms")]
    pub infra_fee_fixed: TokenAmount,

    /// Infra fee: minimum in token base units (100000 = $0.10).
    #[arg(
        long,
        env = "PACTUM_INFRA_FEE_MINIMUM",
        default_value = "100000",
        help_heading = "Terms"
    )]
    pub infra_fee_minimum: TokenAmount,

    /// Smallest value, in token base units, of a smart-wallet buyer's vouchers not yet claimed
    /// at which the seller's settlement options recommend claiming now (10000000 = 10 USDC).
    #[arg(
        long,
        env = "PACTUM_EARLY_CLAIM_THRESHOLD",
        default_value = "10000000",
        help_heading = "Settlement"
    )]
    pub early_claim_threshold: TokenAmount,

    /// `GET /readyz` fails when the watcher is more than this many blocks behind the head.
    #[arg(
        long,
        env = "PACTUM_READY_MAX_LAG_BLOCKS",
        default_value_t = 20,
        help_heading = "Observability"
    )]
    pub ready_max_lag_blocks: u64,

    /// Warn (and set the low-balance gauge) when a relayer signer holds less ETH than this, in
    /// wei (default 0.01 ETH).
    #[arg(
        long,
        env = "PACTUM_SIGNER_MIN_BALANCE_WEI",
        default_value_t = 10_000_000_000_000_000,
        help_heading = "Observability"
    )]
    pub signer_min_balance_wei: u128,

    /// Seconds between checks of the relayer signers' balances.
    #[arg(
        long,
        env = "PACTUM_SIGNER_BALANCE_INTERVAL_SECS",
        default_value_t = 60,
        help_heading = "Observability"
    )]
    pub signer_balance_interval_secs: u64,

    /// Webhook delivery: timeouts, retry schedule, SSRF policy, concurrency.
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookSettings,

    /// Agent self-registration: how long claim codes last, where owners claim.
    #[command(flatten)]
    pub registration: crate::registration::RegistrationSettings,

    /// The operator console: the chain explorer it links to, when a transaction is stuck.
    #[command(flatten)]
    pub console: crate::console::ConsoleSettings,
    /// The go/no-go packet: support contacts, log location, the live-chain canary switch.
    #[command(flatten)]
    pub go_no_go: crate::gonogo::GoNoGoSettings,
}

/// Parses `PACTUM_CLOSE_WINDOW_SECS`, refusing a window the escrow contract would refuse, so a
/// misconfigured service stops at start-up instead of failing every activation.
fn parse_close_window(text: &str) -> Result<u64, String> {
    let seconds: u64 = text
        .parse()
        .map_err(|e| format!("PACTUM_CLOSE_WINDOW_SECS must be a number of seconds: {e}"))?;
    check_close_window(seconds).map_err(|e| format!("PACTUM_CLOSE_WINDOW_SECS: {e}"))
}

/// A setting out of its allowed range, for configurations built without the command line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {reason}")]
pub struct InvalidSetting {
    /// The `PACTUM_*` variable at fault.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub reason: String,
}

impl ServeConfig {
    /// Checks the ranges the command line checks, for a configuration built in code (the
    /// service calls it at start-up).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        check_close_window(self.close_window_secs).map_err(|e| InvalidSetting {
            variable: "PACTUM_CLOSE_WINDOW_SECS",
            reason: e.to_string(),
        })?;
        Ok(())
    }

    /// The terms policy these settings describe.
    pub fn terms_policy(&self) -> TermsPolicy {
        TermsPolicy {
            activation_window: self.activation_window_secs,
            expiry: self.expiry_secs,
            close_window: self.close_window_secs,
            fee: FeeSchedule {
                basis_points: self.infra_fee_bps,
                fixed: self.infra_fee_fixed,
                minimum: self.infra_fee_minimum,
            },
        }
    }

    /// The rate limits these settings describe.
    pub fn rate_limits(&self) -> crate::api::rate_limit::Limits {
        crate::api::rate_limit::Limits {
            window: Duration::from_secs(self.rate_limit_window_secs.max(1)),
            read: self.rate_limit_read,
            write: self.rate_limit_write,
            sponsored: self.rate_limit_sponsored,
            management: self.rate_limit_management,
            checks: self.rate_limit_checks,
            governance: self.rate_limit_governance,
            registration: self.rate_limit_registration,
            registration_window: Duration::from_secs(
                self.rate_limit_registration_window_secs.max(1),
            ),
        }
    }

    /// The poll interval.
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }

    /// The relayer's poll interval: its own setting, else [`ServeConfig::poll_interval`].
    pub fn relayer_poll_interval(&self) -> Duration {
        self.relayer_poll_interval_ms
            .map_or_else(|| self.poll_interval(), |ms| Duration::from_millis(ms.max(10)))
    }
}

/// Turns a TOML configuration file into `--flag=value` arguments for the keys whose
/// `PACTUM_*` variable is not set, so a file sits below the environment and the command line.
/// Keys are the long flag names with `_` or `-`; arrays become comma-separated values.
pub fn toml_to_args(text: &str) -> Result<Vec<String>, String> {
    let table: toml::Table = text.parse().map_err(|e| format!("invalid TOML: {e}"))?;
    let mut args = Vec::new();
    for (key, value) in table {
        let flag = key.replace('_', "-");
        let var = format!("PACTUM_{}", key.replace('-', "_").to_ascii_uppercase());
        if std::env::var_os(&var).is_some() {
            continue;
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(true) => {
                args.push(format!("--{flag}"));
                continue;
            }
            toml::Value::Boolean(false) => continue,
            toml::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    toml::Value::String(s) => Ok(s),
                    other => Ok(other.to_string()),
                })
                .collect::<Result<Vec<_>, String>>()?
                .join(","),
            other => return Err(format!("`{key}`: unsupported value {other}")),
        };
        args.push(format!("--{flag}={text}"));
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_become_flags() {
        let args = toml_to_args(
            "database_url = \"sqlite:x.db\"\nconfirmations = 3\nscreening_fail_open = true\n\
             relayer_private_keys = [\"0x01\", \"0x02\"]\n",
        )
        .unwrap();
        assert!(args.contains(&"--database-url=sqlite:x.db".to_owned()));
        assert!(args.contains(&"--confirmations=3".to_owned()));
        assert!(args.contains(&"--screening-fail-open".to_owned()));
        assert!(args.contains(&"--relayer-private-keys=0x01,0x02".to_owned()));
        assert!(toml_to_args("not toml [").is_err());
    }

    #[test]
    fn an_in_flight_window_of_zero_is_refused() {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            config: ServeConfig,
        }
        use clap::Parser;
        let base = [
            "serve",
            "--escrow-address",
            "0x0000000000000000000000000000000000000001",
            "--relayer-private-keys",
            "0x01",
        ];
        let with = |window: &str| {
            let mut args = base.to_vec();
            args.extend(["--relayer-max-in-flight", window]);
            Serve::try_parse_from(args).map(|s| s.config.relayer_max_in_flight)
        };
        let refused = with("0").expect_err("0 would stall every relayer key");
        assert_eq!(refused.kind(), clap::error::ErrorKind::ValueValidation, "{refused}");
        assert_eq!(with("1").unwrap(), 1);
    }

    #[test]
    fn a_close_window_outside_the_contracts_bounds_is_refused_naming_the_variable() {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            config: ServeConfig,
        }
        use clap::Parser;
        let with = |window: Option<&str>| {
            let mut args = vec![
                "serve",
                "--escrow-address",
                "0x0000000000000000000000000000000000000001",
                "--relayer-private-keys",
                "0x01",
            ];
            if let Some(window) = window {
                args.extend(["--close-window-secs", window]);
            }
            Serve::try_parse_from(args).map(|s| s.config)
        };
        let default = with(None).unwrap();
        assert_eq!(default.close_window_secs, 86_400);
        assert_eq!(default.validate(), Ok(()));
        assert_eq!(with(Some("3600")).unwrap().close_window_secs, 3_600);
        assert_eq!(with(Some("31536000")).unwrap().close_window_secs, 31_536_000);
        for refused in ["3599", "31536001", "0", "an hour"] {
            let error = with(Some(refused)).expect_err(refused);
            assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation, "{error}");
            let message = error.to_string();
            assert!(message.contains("PACTUM_CLOSE_WINDOW_SECS"), "{message}");
            if refused != "an hour" {
                assert!(message.contains("3600 to 31536000 seconds"), "{message}");
            }
        }
        // `validate` (called by `Service::start`): tests/it/serve_cli.rs.
    }

    #[test]
    fn the_log_format_is_a_flag_and_a_toml_key() {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            log: LogConfig,
        }
        use clap::Parser;
        let parse = |args: &[&str]| Serve::try_parse_from(args).map(|s| s.log.log_format);
        assert_eq!(parse(&["serve"]).unwrap(), LogFormat::Text);
        assert_eq!(parse(&["serve", "--log-format", "json"]).unwrap(), LogFormat::Json);
        assert!(parse(&["serve", "--log-format", "xml"]).is_err());
        let from_file = toml_to_args("log_format = \"json\"\n").unwrap();
        assert_eq!(from_file, vec!["--log-format=json".to_owned()]);
        let mut args = vec!["serve".to_owned()];
        args.extend(from_file);
        assert_eq!(Serve::try_parse_from(args).unwrap().log.log_format, LogFormat::Json);
    }
}
