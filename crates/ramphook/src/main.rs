//! The `ramphook` command line.

use ramphook::config::{parse_cli, Command};

#[tokio::main]
async fn main() {
    let cli = parse_cli();
    match cli.command {
        Command::Serve(config) => {
            ramphook::telemetry::init_logging(config.log_format);
            if let Err(err) = ramphook::serve(config).await {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        }
    }
}
