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

#[test]
fn serve_refuses_a_close_window_the_contract_would_refuse_naming_the_variable_and_bounds() {
    let dir = unique_dir("pactum-serve-cli-window");
    let config = dir.join("window.toml");
    std::fs::write(&config, "close_window_secs = 31536001\n").unwrap();
    let serve = |window_env: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_pactum"));
        command
            .args(["serve", "--config"])
            .arg(&config)
            .env("PACTUM_ESCROW_ADDRESS", "0x0000000000000000000000000000000000000001")
            .env("PACTUM_RELAYER_PRIVATE_KEYS", "0x01")
            .env_remove("PACTUM_CLOSE_WINDOW_SECS");
        if let Some(window) = window_env {
            command.env("PACTUM_CLOSE_WINDOW_SECS", window);
        }
        command.output().unwrap()
    };
    // Below the minimum from the environment, above the maximum from the file.
    for output in [serve(Some("3599")), serve(None)] {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("PACTUM_CLOSE_WINDOW_SECS"), "{stderr}");
        assert!(stderr.contains("3600 to 31536000 seconds"), "{stderr}");
        assert!(stderr.contains("MIN_CLOSE_WINDOW and MAX_CLOSE_WINDOW"), "{stderr}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A configuration built in code (as `pactum dev` and embedders build it) is held to the same
/// bounds when the service starts, before it opens the store or calls the chain.
#[tokio::test]
async fn the_service_refuses_to_start_with_a_close_window_out_of_bounds() {
    let dir = unique_dir("pactum-start-window");
    let mut config = crate::support::service::config_without_chain(&dir);
    config.close_window_secs = 600;
    let error = pactum::service::Service::start(config).await.expect_err("600 s is too short");
    assert!(matches!(error, pactum::service::ServiceError::Config(_)), "{error}");
    let message = error.to_string();
    assert!(message.contains("PACTUM_CLOSE_WINDOW_SECS"), "{message}");
    assert!(message.contains("3600 to 31536000 seconds"), "{message}");
    assert!(!dir.join("pactum.db").exists(), "the store was not opened");
    let _ = std::fs::remove_dir_all(&dir);
}
