//! docs/walkthrough.md, run as written: the real `pactum dev` on free ports, then every ```bash
//! block of the page, in order, as one bash script with `pactum` and the pinned `cast` on `PATH`,
//! as the page's setup puts them. The page ends with a check of its own, so the test fails when
//! the flow or the page goes wrong. Afterwards `pactum dev` is stopped with SIGTERM and must take
//! its anvil with it.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::docs_page::{Dev, bash_blocks, kill, wait_for_exit};

/// The page under test, relative to the crate root.
const WALKTHROUGH: &str = "docs/walkthrough.md";

/// What the page's last block prints when everything worked.
const DONE: &str = "walkthrough complete:";

#[test]
fn the_walkthrough_runs_as_written_against_pactum_dev() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let blocks = bash_blocks(&std::fs::read_to_string(root.join(WALKTHROUGH)).unwrap());
    assert!(blocks.len() >= 5, "{WALKTHROUGH} has only {} ```bash blocks", blocks.len());
    assert!(blocks.last().unwrap().contains(DONE), "the last block is the page's final check");

    let mut dev = Dev::start("pactum-walkthrough");
    let (status, stdout, report) = dev.run_page(WALKTHROUGH);
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
    assert!(!dev.out.exists(), "{} outlived pactum dev", dev.out.display());
    for port in dev.ports {
        assert!(TcpListener::bind(("127.0.0.1", port)).is_ok(), "port {port} is still taken");
    }
    let _ = std::fs::remove_dir_all(&dev.dir);
}

#[test]
fn bash_blocks_are_taken_in_order_and_other_blocks_left_out() {
    let page = "text\n```bash\na\nb\n```\n```sh\nnot run\n```\n```json\n{}\n```\n```bash\nc\n```\n";
    assert_eq!(bash_blocks(page), ["a\nb\n", "c\n"]);
}
