//! Runs a page of docs/ as written: the real `pactum dev` on free ports, then every ```bash
//! block of the page, in order, as one bash script with `pactum` and the pinned `cast` on
//! `PATH`, as the pages' set-up puts them.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::service::unique_dir;

/// A port that was free a moment ago (bound on 127.0.0.1:0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The contents of the ```bash blocks of `markdown`, in order, one after another.
pub fn bash_blocks(markdown: &str) -> Vec<String> {
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
    assert!(current.is_none(), "the page has an unclosed ```bash block");
    blocks
}

/// Sends `signal` (`TERM`, `KILL`, `0`) to the process `pid`, or to the process group `pid`
/// when `group`; whether `kill` succeeded (for `0`: whether such a process still exists).
pub fn kill(signal: &str, pid: u32, group: bool) -> bool {
    let target = if group { format!("-{pid}") } else { pid.to_string() };
    Command::new("kill")
        .args(["-s", signal, "--", &target])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Waits up to `limit` for `child` to exit.
pub fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
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
pub struct Dev {
    /// The `pactum dev` process.
    pub child: Child,
    /// Its working directory (the script runs there too).
    pub dir: PathBuf,
    /// The JSON it writes once it is up (`--out`).
    pub out: PathBuf,
    /// Its chain and API ports.
    pub ports: [u16; 2],
    log: PathBuf,
}

impl Dev {
    /// Starts `pactum dev` in a fresh directory named after `name` and waits (up to 120 s) for
    /// its `--out` file.
    pub fn start(name: &str) -> Dev {
        let dir = unique_dir(name);
        let out = dir.join("dev.json");
        let ports = [free_port(), free_port()];
        let log = dir.join("dev.log");
        let child = Command::new(env!("CARGO_BIN_EXE_pactum"))
            .arg("dev")
            .arg("--out")
            .arg(&out)
            .args(["--rpc-port", &ports[0].to_string(), "--port", &ports[1].to_string()])
            .arg("--database")
            .arg(dir.join("dev.db"))
            .current_dir(&dir)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("pactum dev starts");
        let mut dev = Dev { child, dir, out, ports, log };
        let deadline = Instant::now() + Duration::from_secs(120);
        while !dev.out.exists() {
            if let Some(status) = dev.child.try_wait().unwrap() {
                panic!("pactum dev exited ({status}) before writing its JSON:\n{}", dev.log());
            }
            assert!(Instant::now() < deadline, "no dev JSON after 120 s:\n{}", dev.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        dev
    }

    /// What `pactum dev` logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the ```bash blocks of `page` (relative to the crate root) as one script against
    /// this `pactum dev`, for up to three minutes: its exit (`None` when it ran out of time),
    /// its standard output and a report for a failed assertion.
    pub fn run_page(&self, page: &str) -> (Option<ExitStatus>, String, String) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let blocks = bash_blocks(&std::fs::read_to_string(root.join(page)).unwrap());
        let script = self.dir.join("page.sh");
        std::fs::write(&script, format!("set -euo pipefail\n{}", blocks.concat())).unwrap();
        let pactum = Path::new(env!("CARGO_BIN_EXE_pactum"));
        let path = std::env::join_paths(
            [pactum.parent().unwrap().to_path_buf(), root.join("anvil/node_modules/.bin")]
                .into_iter()
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
        )
        .unwrap();
        let (stdout, stderr) = (self.dir.join("page.out"), self.dir.join("page.err"));
        let mut run = Command::new("bash")
            .arg(&script)
            .current_dir(&self.dir)
            .env("PATH", path)
            .env("PACTUM_DEV_JSON", &self.out)
            .env_remove("PACTUM_PRIVATE_KEY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let status = wait_for_exit(&mut run, Duration::from_secs(180));
        if status.is_none() {
            let _ = run.kill();
            let _ = run.wait();
        }
        let (stdout, stderr) =
            (std::fs::read_to_string(stdout).unwrap(), std::fs::read_to_string(stderr).unwrap());
        let report = format!(
            "{page} ended with {status:?}\n--- stdout\n{stdout}--- stderr\n{stderr}\
             --- pactum dev\n{}",
            self.log()
        );
        (status, stdout, report)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        kill("KILL", self.child.id(), true);
        let _ = self.child.wait();
    }
}
