//! `pactum serve` as a child process: the real binary, configured through its environment
//! variables as an operator would, on a port of its own.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;

use super::DevChain;
use super::service::{OWNER_KEY, RECEIPT_KEY};

/// One `pactum serve` process (started by [`ServeProcess::spawn`], SIGKILLed when dropped).
pub struct ServeProcess {
    env: BTreeMap<&'static str, String>,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl ServeProcess {
    /// A process for `chain` on `database_url`, signing with `relayers`, its log in `dir`:
    /// two confirmations, a 50 ms poll, no rate limits (tests poll hard).
    pub fn new(
        chain: &DevChain,
        relayers: &[PrivateKeySigner],
        database_url: &str,
        dir: &Path,
    ) -> ServeProcess {
        let port = free_port();
        let keys: Vec<String> = relayers.iter().map(|k| k.to_bytes().to_string()).collect();
        let env = BTreeMap::from([
            ("PACTUM_DATABASE_URL", database_url.to_owned()),
            ("PACTUM_LISTEN", format!("127.0.0.1:{port}")),
            ("PACTUM_RPC_URL", chain.anvil.endpoint()),
            ("PACTUM_ESCROW_ADDRESS", chain.escrow.address().to_string()),
            ("PACTUM_RELAYER_PRIVATE_KEYS", keys.join(",")),
            ("PACTUM_OWNER_KEY", OWNER_KEY.to_owned()),
            ("PACTUM_RECEIPT_PRIVATE_KEY", RECEIPT_KEY.to_owned()),
            ("PACTUM_CONFIRMATIONS", "2".to_owned()),
            ("PACTUM_POLL_INTERVAL_MS", "50".to_owned()),
            ("PACTUM_RATE_LIMIT_READ", "0".to_owned()),
            ("PACTUM_RATE_LIMIT_WRITE", "0".to_owned()),
            ("PACTUM_RATE_LIMIT_SPONSORED", "0".to_owned()),
            ("PACTUM_RATE_LIMIT_MANAGEMENT", "0".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
        ]);
        let name = format!("serve-{port}.log");
        ServeProcess { env, port, log: dir.join(name), child: None }
    }

    /// Sets (or overrides) one environment variable of the process's next start.
    pub fn env(mut self, name: &'static str, value: impl Into<String>) -> ServeProcess {
        self.env.insert(name, value.into());
        self
    }

    /// The process's base URL.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts the process (its log appended to its log file).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_pactum"))
            .arg("serve")
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    /// Waits until the process answers `/healthz` (panics after 30 s, with its log).
    pub async fn wait_up(&self) {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            if http.get(format!("{}/healthz", self.base())).send().await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("pactum serve did not come up in 30 s:\n{}", self.log_tail());
    }

    /// SIGKILL, and reaps the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM; the exit status once the process is gone (panics if it is not within 30 s, well
    /// past the service's 10 s shutdown grace).
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        for _ in 0..300 {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = child.kill();
        panic!("pactum serve did not stop within 30 s of SIGTERM");
    }

    /// The process's log so far (its last 40 lines), for a failure message.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
