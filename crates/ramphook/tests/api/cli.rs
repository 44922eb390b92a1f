//! The command line: bad values stop start-up with one line naming the
//! setting; the admin token is generated when unset; --help lists env vars;
//! start-up raises the open-file limit the deliveries in flight need.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs the binary to completion; a run that does not end in 10 s (a bad
/// value accepted, the server started) fails the test instead of hanging it.
fn ramphook(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ramphook"));
    command
        .args(args)
        .current_dir(dir.path())
        .env("RAMPHOOK_LISTEN", "127.0.0.1:0");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("RAMPHOOK_")) {
        command.env_remove(k);
    }
    command.envs(env.iter().copied());
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("ramphook {args:?} did not exit: the bad value was accepted");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_bad_duration_stops_start_up_with_one_line_naming_the_setting() {
    let out = ramphook(&["serve"], &[("RAMPHOOK_DELIVERY_TIMEOUT", "soon")]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--delivery-timeout") && stderr.contains("RAMPHOOK_DELIVERY_TIMEOUT"),
        "{stderr}"
    );
}

#[test]
fn bad_retry_schedule_and_cidr_name_their_settings() {
    let out = ramphook(&["serve", "--retry-schedule", "0s,5y"], &[]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("RAMPHOOK_RETRY_SCHEDULE") && stderr.contains("5y"),
        "{stderr}"
    );

    let out = ramphook(&["serve"], &[("RAMPHOOK_ALLOW_CIDRS", "127.0.0.0/33")]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("RAMPHOOK_ALLOW_CIDRS"), "{stderr}");
}

#[test]
fn help_lists_every_setting_with_its_env_var() {
    let out = ramphook(&["serve", "--help"], &[]);
    let help = String::from_utf8(out.stdout).unwrap();
    for env in [
        "RAMPHOOK_LISTEN",
        "RAMPHOOK_DATABASE_URL",
        "RAMPHOOK_ADMIN_TOKEN",
        "RAMPHOOK_ALLOW_CIDRS",
        "RAMPHOOK_RETRY_SCHEDULE",
        "RAMPHOOK_DELIVERY_TIMEOUT",
        "RAMPHOOK_LOG_FORMAT",
    ] {
        assert!(help.contains(env), "--help lacks {env}:\n{help}");
    }
}

#[tokio::test]
async fn an_unset_admin_token_is_generated_printed_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ramphook"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}/r.db", dir.path().display()))
        .env_remove("RAMPHOOK_ADMIN_TOKEN")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut token, mut base) = (None, None);
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some((_, t)) = line.split_once("admin token (generated; set RAMPHOOK_ADMIN_TOKEN to keep one): ") {
            token = Some(t.to_owned());
        }
        if let Some(addr) = line.strip_prefix("ramphook listening on ") {
            base = Some(addr.to_owned());
            break;
        }
    }
    let (token, base) = (token.expect("token printed"), base.unwrap());
    let client = reqwest::Client::new();
    let ok = client
        .post(format!("{base}/v1/partners"))
        .bearer_auth(&token)
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 201);
    let wrong = client
        .post(format!("{base}/v1/partners"))
        .bearer_auth("nope")
        .body(r#"{"name":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
}

#[test]
fn bad_limits_and_master_keys_name_their_settings_and_never_echo_a_key() {
    let out = ramphook(&["serve"], &[("RAMPHOOK_RATE_LIMIT", "fast")]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("RAMPHOOK_RATE_LIMIT") && stderr.contains("fast"),
        "{stderr}"
    );

    let out = ramphook(&["serve"], &[("RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER", "0")]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("RAMPHOOK_MAX_ENDPOINTS_PER_PARTNER"), "{stderr}");

    let out = ramphook(&["serve"], &[("RAMPHOOK_WORKER_THREADS", "0")]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("RAMPHOOK_WORKER_THREADS"), "{stderr}");

    let out = ramphook(&["serve"], &[("RAMPHOOK_MASTER_KEY", "short-SECRET-key")]);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("RAMPHOOK_MASTER_KEY"), "{stderr}");
    assert!(!stderr.contains("SECRET"), "the key is not echoed: {stderr}");
}

#[test]
fn postgres_without_a_master_key_refuses_to_start_with_one_line() {
    let out = ramphook(
        &["serve"],
        &[("RAMPHOOK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")],
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("RAMPHOOK_MASTER_KEY") && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
}

#[test]
fn sqlite_without_a_master_key_generates_a_private_key_file_beside_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ramphook.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ramphook"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .env_remove("RAMPHOOK_MASTER_KEY")
        .env_remove("RAMPHOOK_MASTER_KEY_FILE")
        .env("RAMPHOOK_ADMIN_TOKEN", "test-admin-token-0123456789")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once it listens, the key file is written and the warning logged.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("ramphook listening on") {
                let _ = tx.send(());
            }
        }
    });
    let listening = rx.recv_timeout(Duration::from_secs(10));
    let key = dir.path().join("ramphook.db.key");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        listening.is_ok(),
        "the server started: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("generated") && stderr.contains("ramphook.db.key"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(ramphook::secrets::MasterKey::from_base64(&text).is_ok());
    assert!(!stderr.contains(text.trim()), "the key is not logged");
}

/// Starts `ramphook serve` with its open-file limits set to `soft`/`hard`
/// before exec, waits until it listens, and answers its soft limit then (read
/// from /proc) and its log so far.
async fn serve_with_file_limits(soft: u64, hard: u64) -> (u64, String) {
    use std::os::unix::process::CommandExt;
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ramphook"));
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}/r.db", dir.path().display()))
        .env("RAMPHOOK_ADMIN_TOKEN", "a-test-admin-token-0123")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap());
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        command.pre_exec(move || rlimit::setrlimit(rlimit::Resource::NOFILE, soft, hard));
    }
    let mut child = tokio::process::Command::from(command)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.starts_with("ramphook listening on") {
                return;
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server listens within 20 s");
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id().unwrap())).unwrap();
    let open_files = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let soft_now = open_files.split_whitespace().nth(3).unwrap().parse().unwrap();
    (soft_now, std::fs::read_to_string(&log).unwrap())
}

#[tokio::test]
async fn the_server_raises_its_soft_open_file_limit_and_warns_when_the_hard_one_is_too_low() {
    let (_, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
    assert!(
        hard > 256,
        "this machine's hard open-file limit ({hard}) leaves nothing to raise"
    );
    // Every delivery in flight holds a connection: 1,024 by default.
    let (soft, log) = serve_with_file_limits(256, hard).await;
    assert_eq!(soft, hard, "the soft limit is raised to the hard one");
    if hard >= 1024 + 512 {
        assert!(!log.contains("open-file limit"), "{log}");
    }
    let (soft, log) = serve_with_file_limits(256, 600).await;
    assert_eq!(soft, 600);
    assert!(log.contains("the open-file limit is below --max-in-flight"), "{log}");
}
