//! `pactum serve` as operators run it: settings from a TOML file, the environment and flags in
//! that order of precedence, and a clean exit on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::DevChain;
use crate::support::service::unique_dir;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn serve_reads_its_config_file_below_env_and_flags_and_stops_on_sigterm() {
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-serve-cli");
    let (file_port, flag_port) = (free_port(), free_port());
    let config = dir.join("pactum.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"sqlite:{file_db}?mode=rwc\"\nlisten = \"127.0.0.1:{file_port}\"\n\
             rpc_url = \"{rpc}\"\nescrow_address = \"{escrow}\"\n\
             relayer_private_keys = [\"{key}\"]\nconfirmations = 3\n",
            file_db = dir.join("from-file.db").display(),
            rpc = chain.anvil.endpoint(),
            escrow = chain.escrow.address(),
            key = chain.relayer.to_bytes(),
        ),
    )
    .unwrap();
    let env_db = dir.join("from-env.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pactum"))
        .args(["serve", "--config"])
        .arg(&config)
        .arg(format!("--listen=127.0.0.1:{flag_port}"))
        .env("PACTUM_DATABASE_URL", format!("sqlite:{}?mode=rwc", env_db.display()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let mut health = None;
    for _ in 0..100 {
        if let Ok(response) =
            client.get(format!("http://127.0.0.1:{flag_port}/health")).send().await
        {
            health = Some(response.json::<serde_json::Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let health = health.expect("serving on the port given as a flag");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["chain_id"], chain.chain_id);
    assert_eq!(health["escrow_contract"], chain.escrow.address().to_checksum(None));
    assert!(client.get(format!("http://127.0.0.1:{file_port}/health")).send().await.is_err());
    assert!(env_db.exists(), "the environment's database wins over the file's");
    assert!(!dir.join("from-file.db").exists());

    // SIGTERM: a graceful shutdown and a zero exit status.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut status = None;
    for _ in 0..150 {
        if let Some(exit) = child.try_wait().unwrap() {
            status = Some(exit);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("pactum serve did not stop on SIGTERM")
    });
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn serve_refuses_a_config_file_with_an_unknown_key() {
    let dir = unique_dir("pactum-serve-cli-bad");
    let config = dir.join("bad.toml");
    std::fs::write(&config, "no_such_setting = 1\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_pactum"))
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-setting"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
