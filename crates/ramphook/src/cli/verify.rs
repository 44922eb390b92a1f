//! `ramphook verify`: checks one received webhook — body signature and
//! Standard Webhooks headers — from the command line. The checks themselves
//! live in `ramphook_signature::verify_webhook`; this only gathers the input.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;
use ramphook_signature::{decode_secret, verify_webhook};

use super::args::{parse_header, parse_tolerance, Header, Tolerance};

#[derive(Debug, Clone, Args)]
pub struct VerifyArgs {
    /// The endpoint secret, as ramphook showed it or as whsec_<base64>.
    #[arg(long, env = "RAMPHOOK_WEBHOOK_SECRET", hide_env_values = true)]
    pub secret: String,

    /// File holding the raw request body; read from stdin when absent or "-".
    #[arg(long, value_name = "PATH")]
    pub body_file: Option<PathBuf>,

    /// A request header as 'name: value' (repeatable; names are
    /// case-insensitive). webhook-id, webhook-timestamp and webhook-signature
    /// are needed.
    #[arg(long = "header", short = 'H', value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<Header>,

    /// How far webhook-timestamp may be from now, e.g. 5m; "off" skips the
    /// check (for recorded or test-vector webhooks).
    #[arg(long, default_value = "5m", value_parser = parse_tolerance)]
    pub tolerance: Tolerance,
}

/// Prints `valid` and returns 0, or prints one reason on stderr and returns
/// 1; an unreadable body returns 2.
pub fn run(args: &VerifyArgs) -> i32 {
    let body = match read_body(args.body_file.as_ref()) {
        Ok(body) => body,
        Err(err) => {
            eprintln!("error: {err}");
            return 2;
        }
    };
    let headers = args.headers.iter().map(|h| (h.name.as_str(), h.value.as_str()));
    let now = chrono::Utc::now().timestamp();
    match verify_webhook(
        &decode_secret(&args.secret),
        headers,
        &body,
        now,
        args.tolerance.seconds(),
    ) {
        Ok(_) => {
            println!("valid");
            0
        }
        Err(reason) => {
            eprintln!("invalid: {reason}");
            1
        }
    }
}

fn read_body(path: Option<&PathBuf>) -> Result<Vec<u8>, String> {
    match path {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::read(path).map_err(|e| format!("cannot read --body-file {}: {e}", path.display()))
        }
        _ => {
            let mut body = Vec::new();
            std::io::stdin()
                .read_to_end(&mut body)
                .map_err(|e| format!("cannot read the body from stdin: {e}"))?;
            Ok(body)
        }
    }
}
