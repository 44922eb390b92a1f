//! README.md's "Five minutes as a partner" cannot drift: its shell block is
//! read from the README, the `listen` command of terminal 2 is started with
//! the README's arguments, and terminal 3's curl commands run with `bash`
//! against a real `ramphook serve` — only the two addresses are substituted.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use crate::common::{wait_until, Backend, TestServer};
use crate::partner_listen::Listen;

const SECTION: &str = "## Five minutes as a partner";
/// The addresses the README's commands use, replaced by the real ones.
const README_SERVER: &str = "localhost:8080";
const README_LISTENER: &str = "127.0.0.1:9000";

/// The first ```sh block after the section's heading.
fn walkthrough_block() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let section = &readme[readme
        .find(SECTION)
        .unwrap_or_else(|| panic!("README.md lost {SECTION:?}"))..];
    let start = section.find("```sh\n").expect("the section has a ```sh block") + "```sh\n".len();
    let end = section[start..].find("```").expect("the ```sh block ends");
    section[start..start + end].to_owned()
}

/// The lines of the block from the comment starting with `# N.` up to the next such comment.
fn terminal(block: &str, n: u32) -> String {
    let mut lines = block.lines().skip_while(|l| !l.starts_with(&format!("# {n}. ")));
    let heading = lines
        .next()
        .unwrap_or_else(|| panic!("no terminal {n} in the README block"));
    let body: Vec<&str> = lines
        .take_while(|l| !l.starts_with(&format!("# {}. ", n + 1)))
        .collect();
    assert!(!body.is_empty(), "terminal {n} ({heading}) is empty");
    body.join("\n") + "\n"
}

/// The value of `NAME=value` in `text` (up to white space).
fn assignment(text: &str, name: &str) -> String {
    let at = text
        .find(&format!("{name}="))
        .unwrap_or_else(|| panic!("{name}= not in:\n{text}"))
        + name.len()
        + 1;
    text[at..].split_whitespace().next().unwrap().to_owned()
}

fn require_tool(tool: &str) {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "the README walkthrough test needs `{tool}` on PATH; install it");
}

#[tokio::test]
async fn the_five_minute_walkthrough_works_as_written() {
    require_tool("curl");
    require_tool("jq");
    require_tool("bash");
    let block = walkthrough_block();

    // Terminal 1: the service, with the README's token and allowed CIDRs.
    let service = terminal(&block, 1);
    assert!(service.contains("-- serve"), "{service}");
    let token = assignment(&service, "RAMPHOOK_ADMIN_TOKEN");
    let cidrs = assignment(&service, "RAMPHOOK_ALLOW_CIDRS");
    let server = TestServer::start_with(
        Backend::Sqlite,
        &[("RAMPHOOK_ADMIN_TOKEN", &token), ("RAMPHOOK_ALLOW_CIDRS", &cidrs)],
    )
    .await;

    // Terminal 2: `listen` with the README's arguments, on a free port.
    let partner_side = terminal(&block, 2);
    let command = partner_side
        .lines()
        .find(|l| !l.starts_with('#') && l.contains("-- listen "))
        .unwrap_or_else(|| panic!("no `-- listen` command in terminal 2:\n{partner_side}"));
    let args: Vec<&str> = command.split("-- listen ").nth(1).unwrap().split_whitespace().collect();
    let port = args
        .iter()
        .position(|a| *a == "--port")
        .expect("listen is given --port");
    assert_eq!(format!("127.0.0.1:{}", args[port + 1]), README_LISTENER);
    let mut args = args.clone();
    args.drain(port..=port + 1);
    let listen = Listen::start(&args).await;

    // Terminal 3: the platform's calls, against the real addresses.
    let calls = terminal(&block, 3);
    for address in [README_SERVER, README_LISTENER] {
        assert!(calls.contains(address), "terminal 3 no longer uses {address}:\n{calls}");
    }
    let script = calls
        .replace(README_SERVER, server.base.trim_start_matches("http://"))
        .replace(README_LISTENER, listen.base.trim_start_matches("http://"));
    let mut bash = Command::new("bash");
    bash.args(["-euo", "pipefail", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("RAMPHOOK_")) {
        bash.env_remove(k);
    }
    let run = tokio::time::timeout(Duration::from_secs(30), bash.spawn().unwrap().wait_with_output())
        .await
        .expect("the README's commands finish within 30s")
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the README's commands failed: {}\n{stdout}\n{stderr}",
        run.status
    );
    for answer in [
        r#""url":"http://127.0.0.1:"#,
        r#""eventName":"payment_received""#,
        r#""eventName":"crypto_tx_sent""#,
    ] {
        assert!(stdout.contains(answer), "no {answer} in the answers:\n{stdout}");
    }
    assert!(
        !stdout.contains("problem+json") && !stdout.contains(r#""code":"#),
        "{stdout}"
    );

    // The validation step answered (the order exists because it allowed alice)…
    listen
        .wait_for_line(
            |l| l.starts_with("validation buy for alice@example.com"),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        listen.output().contains(
            "validation buy for alice@example.com  [no authorization header]\n  → answered 200 {\"allowed\":true}"
        ),
        "{}",
        listen.output()
    );
    // …and both webhooks arrived with both signatures ticked.
    let order = listen
        .wait_for_line(|l| l.starts_with("webhook payment_received"), Duration::from_secs(10))
        .await;
    let order = order.split_whitespace().nth(3).unwrap().to_owned();
    listen
        .wait_for_line(|l| l.starts_with("webhook crypto_tx_sent"), Duration::from_secs(10))
        .await;
    wait_until(Duration::from_secs(10), "both webhooks are answered", || async {
        listen
            .output()
            .split("\nwebhook ")
            .filter(|chunk| {
                (chunk.starts_with("payment_received") || chunk.starts_with("crypto_tx_sent"))
                    && chunk.contains("→ answered")
            })
            .count()
            >= 2
    })
    .await;
    let out = listen.output();
    for event in ["payment_received", "crypto_tx_sent"] {
        let chunk = out
            .split("\nwebhook ")
            .find(|chunk| chunk.starts_with(event))
            .unwrap_or_else(|| panic!("no webhook {event}:\n{out}"));
        assert!(chunk.contains(&format!("order {order}")), "{chunk}");
        assert!(
            chunk.contains("  ✓ body signature\n  ✓ header signature\n  → answered 200"),
            "{event}:\n{out}"
        );
    }
    assert!(!out.contains('✗'), "{out}");

    // The order the README made is the one the webhooks were about.
    let (status, body) = server
        .call("GET", &format!("/v1/orders/{order}"), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let names: Vec<_> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventName"].clone())
        .collect();
    assert_eq!(names, ["payment_received", "crypto_tx_sent"]);
}
