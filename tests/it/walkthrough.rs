//! docs/walkthrough.md, run as written: the real `pactum dev` on free ports, then every ```bash
//! block of the page, in order, as one bash script with `pactum` and the pinned `cast` on `PATH`,
//! as the page's setup puts them. The page ends with a check of its own, so the test fails when
//! the flow or the page goes wrong. Afterwards `pactum dev` is stopped with SIGTERM and must take
//! its anvil with it.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::support::service::unique_dir;

/// The page under test, relative to the crate root.
const WALKTHROUGH: &str = "docs/walkthrough.md";

/// What the page's last block prints when everything worked.
const DONE: &str = "walkthrough complete:";

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The contents of the ```bash blocks of `markdown`, in order, one after another.
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
    assert!(current.is_none(), "{WALKTHROUGH} has an unclosed ```bash block");
    blocks
}

/// Sends `signal` (`TERM`, `KILL`, `0`) to the process `pid`, or to the process group `pid`
/// when `group`; whether `kill` succeeded (for `0`: whether such a process still exists).
fn kill(signal: &str, pid: u32, group: bool) -> bool {
    let target = if group { format!("-{pid}") } else { pid.to_string() };
    Command::new("kill")
        .args(["-s", signal, "--", &target])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Waits up to `limit` for `child` to exit.
fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// `pactum dev`, started in a process group of its own; dropping it kills the whole group, so a
/// failed test leaves no anvil behind either.
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
        kill("KILL", self.child.id(), true);
        let _ = self.child.wait();
    }
}

#[test]
fn the_walkthrough_runs_as_written_against_pactum_dev() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks = bash_blocks(&std::fs::read_to_string(root.join(WALKTHROUGH)).unwrap());
    assert!(blocks.len() >= 5, "{WALKTHROUGH} has only {} ```bash blocks", blocks.len());
    assert!(blocks.last().unwrap().contains(DONE), "the last block is the page's final check");

    let dir = unique_dir("pactum-walkthrough");
    let out = dir.join("dev.json");
    let (rpc_port, api_port) = (free_port(), free_port());
    let pactum = Path::new(env!("CARGO_BIN_EXE_pactum"));
    let log = dir.join("dev.log");
    let mut dev = Dev {
        child: Command::new(pactum)
            .arg("dev")
            .arg("--out")
            .arg(&out)
            .args(["--rpc-port", &rpc_port.to_string(), "--port", &api_port.to_string()])
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
        if let Some(status) = dev.child.try_wait().unwrap() {
            panic!("pactum dev exited ({status}) before writing {}:\n{}", out.display(), dev.log());
        }
        assert!(Instant::now() < deadline, "no {} after 120 s:\n{}", out.display(), dev.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    let script = dir.join("walkthrough.sh");
    std::fs::write(&script, format!("set -euo pipefail\n{}", blocks.concat())).unwrap();
    let path = std::env::join_paths(
        [pactum.parent().unwrap().to_path_buf(), root.join("anvil/node_modules/.bin")]
            .into_iter()
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let (stdout, stderr) = (dir.join("walkthrough.out"), dir.join("walkthrough.err"));
    let mut walk = Command::new("bash")
        .arg(&script)
        .current_dir(&dir)
        .env("PATH", path)
        .env("PACTUM_DEV_JSON", &out)
        .env_remove("PACTUM_PRIVATE_KEY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let status = wait_for_exit(&mut walk, Duration::from_secs(180));
    if status.is_none() {
        let _ = walk.kill();
        let _ = walk.wait();
    }
    let (stdout, stderr) =
        (std::fs::read_to_string(stdout).unwrap(), std::fs::read_to_string(stderr).unwrap());
    let report = format!(
        "the walkthrough ended with {status:?}\n--- stdout\n{stdout}--- stderr\n{stderr}\
         --- pactum dev\n{}",
        dev.log()
    );
    assert!(status.is_some_and(|s| s.success()), "{report}");
    assert!(stdout.contains(DONE), "{report}");

    // SIGTERM to `pactum dev` alone: it must stop the service and anvil itself.
    assert!(kill("TERM", dev.child.id(), false));
    let exit = wait_for_exit(&mut dev.child, Duration::from_secs(30));
    assert!(exit.is_some_and(|s| s.success()), "pactum dev on SIGTERM: {exit:?}\n{}", dev.log());
    let deadline = Instant::now() + Duration::from_secs(10);
    while kill("0", dev.child.id(), true) {
        assert!(Instant::now() < deadline, "a process of pactum dev (anvil?) outlived it");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!out.exists(), "{} outlived pactum dev", out.display());
    for port in [rpc_port, api_port] {
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is still taken");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bash_blocks_are_taken_in_order_and_other_blocks_left_out() {
    let page = "text\n```bash\na\nb\n```\n```sh\nnot run\n```\n```json\n{}\n```\n```bash\nc\n```\n";
    assert_eq!(bash_blocks(page), ["a\nb\n", "c\n"]);
}
