//! The partner guide cannot drift: docs/partners.md holds the snippet files
//! byte for byte, and those snippets — run by `node` and `python3` — accept a
//! webhook really sent by ramphook and reject a wrong secret or a tampered body.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::common::{real_webhook, Received};

const SECRET: &str = "spaces and ünïcödé in the secret ✓";

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn partners_md_contains_every_snippet_verbatim() {
    let guide = read(docs().join("partners.md"));
    for (fence, file) in [
        ("js", docs().join("snippets/verify.js")),
        ("python", docs().join("snippets/verify.py")),
        ("rust", docs().join("../crates/ramphook-signature/examples/verify.rs")),
    ] {
        let snippet = read(file.clone());
        assert!(
            guide.contains(&format!("```{fence}\n{snippet}```\n")),
            "docs/partners.md lacks {} verbatim in a ```{fence} block",
            file.display()
        );
    }
}

/// Node: require the snippet, call it; exit 0 when it returns, 1 when it throws.
const NODE_HARNESS: &str = r#"
const { verifyRamphookWebhook } = require(process.argv[1]);
const c = JSON.parse(require('fs').readFileSync(0, 'utf8'));
try { verifyRamphookWebhook(c.secret, Buffer.from(c.body, 'utf8'), c.headers); }
catch (e) { console.error(e.message); process.exit(1); }
"#;

/// Python: load the snippet file as a module, call it the same way.
const PYTHON_HARNESS: &str = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("verify", sys.argv[1])
module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
c = json.load(sys.stdin)
try:
    module.verify_ramphook_webhook(c["secret"], c["body"].encode("utf-8"), c["headers"])
except Exception as e:
    print(type(e).__name__, e, file=sys.stderr)
    sys.exit(1)
"#;

/// Runs a snippet on one webhook; returns (accepted, stderr). A missing
/// `node` or `python3` fails the test: these checks are never skipped.
fn run(program: &str, harness: &str, snippet: &str, secret: &str, body: &str, headers: &Value) -> (bool, String) {
    let path = docs().join("snippets").join(snippet);
    let mut child = Command::new(program)
        .args([if program == "node" { "-e" } else { "-c" }, harness])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("`{program}` is required to run the docs' {snippet}: {e}"));
    let input = json!({"secret": secret, "body": body, "headers": headers});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn headers_of(hook: &Received) -> Value {
    json!({
        "webhook-id": hook.headers["webhook-id"],
        "webhook-timestamp": hook.headers["webhook-timestamp"],
        "webhook-signature": hook.headers["webhook-signature"],
    })
}

#[tokio::test]
async fn the_node_and_python_snippets_accept_real_webhooks_and_reject_forgeries() {
    let (_server, hook) = real_webhook(SECRET, "payment_received").await;
    let headers = headers_of(&hook);
    let tampered = hook.body.replace("payment_received", "payment_rejected");
    // Headers signed again for the tampered body, so only the body signature can catch it.
    let at: i64 = hook.headers["webhook-timestamp"].parse().unwrap();
    let mut resigned = headers.clone();
    resigned["webhook-signature"] = json!(ramphook_signature::standard_signature(
        SECRET.as_bytes(),
        hook.webhook_id(),
        at,
        tampered.as_bytes()
    ));
    let old = at - 600;
    let mut stale = headers.clone();
    stale["webhook-timestamp"] = json!(old.to_string());
    stale["webhook-signature"] = json!(ramphook_signature::standard_signature(
        SECRET.as_bytes(),
        hook.webhook_id(),
        old,
        hook.body.as_bytes()
    ));

    for (program, harness, snippet) in [
        ("node", NODE_HARNESS, "verify.js"),
        ("python3", PYTHON_HARNESS, "verify.py"),
    ] {
        let run = |secret: &str, body: &str, headers: &Value| run(program, harness, snippet, secret, body, headers);
        let (ok, stderr) = run(SECRET, &hook.body, &headers);
        assert!(ok, "{snippet} rejects a real webhook: {stderr}");

        let (ok, _) = run("another-secret-entirely", &hook.body, &headers);
        assert!(!ok, "{snippet} accepts a wrong secret");
        let (ok, _) = run(SECRET, &tampered, &headers);
        assert!(!ok, "{snippet} accepts a tampered body");
        let (ok, stderr) = run(SECRET, &tampered, &resigned);
        assert!(!ok, "{snippet} accepts a body signed with another secret");
        assert!(stderr.contains("bad body signature"), "{snippet}: {stderr}");
        let (ok, _) = run(SECRET, &hook.body, &stale);
        assert!(!ok, "{snippet} accepts a 10-minute-old timestamp");
    }
}
