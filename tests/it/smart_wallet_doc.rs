//! docs/smart-wallet.md, run as written: the real `pactum dev` on free ports, then every ```bash
//! block of the page, in order, as one bash script with `pactum` and the pinned `cast` on
//! `PATH`. The page ends with a check of its own (an activation and a voucher signed by the
//! smart wallet's owner, both checked by the escrow through ERC-1271), so the test fails when the
//! recipe or the page goes wrong. The runner is the walkthrough's (tests/walkthrough.rs).
#![cfg(unix)]

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::service::unique_dir;

/// The page under test, relative to the crate root.
const PAGE: &str = "docs/smart-wallet.md";

/// What the page's last block prints when everything worked.
const DONE: &str = "smart wallet recipe complete:";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The contents of the ```bash blocks of `markdown`, in order.
fn bash_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match current.as_mut() {
            None if line.trim_end() == "```bash" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    assert!(current.is_none(), "{PAGE} has an unclosed ```bash block");
    blocks
}

/// `pactum dev` in a process group of its own; dropping it kills the group (anvil included).
struct Dev {
    child: Child,
    log: std::path::PathBuf,
}

impl Dev {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
    }
}

#[test]
fn the_smart_wallet_recipe_runs_as_written_against_pactum_dev() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks = bash_blocks(&std::fs::read_to_string(root.join(PAGE)).unwrap());
    assert!(blocks.last().is_some_and(|b| b.contains(DONE)), "the last block is the final check");

    let dir = unique_dir("pactum-smart-wallet");
    let out = dir.join("dev.json");
    let pactum = Path::new(env!("CARGO_BIN_EXE_pactum"));
    let log = dir.join("dev.log");
    let dev = Dev {
        child: Command::new(pactum)
            .arg("dev")
            .arg("--out")
            .arg(&out)
            .args(["--rpc-port", &free_port().to_string(), "--port", &free_port().to_string()])
            .arg("--database")
            .arg(dir.join("dev.db"))
            .current_dir(&dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("pactum dev starts"),
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !out.exists() {
        assert!(Instant::now() < deadline, "no {} after 120 s:\n{}", out.display(), dev.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    let script = dir.join("smart-wallet.sh");
    std::fs::write(&script, format!("set -euo pipefail\n{}", blocks.concat())).unwrap();
    let path = std::env::join_paths(
        [pactum.parent().unwrap().to_path_buf(), root.join("anvil/node_modules/.bin")]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let output = Command::new("bash")
        .arg(&script)
        .current_dir(&dir)
        .env("PATH", path)
        .env("PACTUM_DEV_JSON", &out)
        .env_remove("PACTUM_PRIVATE_KEY")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) =
        (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let report = format!(
        "{PAGE} ended with {}\n--- stdout\n{stdout}--- stderr\n{stderr}--- pactum dev\n{}",
        output.status,
        dev.log()
    );
    assert!(output.status.success() && stdout.contains(DONE), "{report}");
    assert!(stdout.contains("0x1626ba7e"), "the wallet accepts its owner's signature: {report}");
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}
