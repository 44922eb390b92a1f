//! The `ramphook` command line: `serve` runs the service; `verify` and
//! `listen` are the partner tools.

use ramphook::config::{default_worker_threads, parse_cli, Cli, Command};

/// glibc's malloc was ~15% of the server's time under load (perf, see
/// docs/PERFORMANCE.md); mimalloc's thread-local free lists cost far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = parse_cli();
    let workers = match &cli.command {
        Command::Serve(config) => config.worker_threads.map(usize::from),
        _ => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.unwrap_or_else(|| default_worker_threads(cores)))
        .enable_all()
        .build()
        .expect("the async runtime starts");
    runtime.block_on(run(cli));
}

async fn run(cli: Cli) {
    match cli.command {
        Command::Serve(config) => {
            ramphook::telemetry::init_logging(config.log_format);
            if let Err(err) = ramphook::serve(*config).await {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        }
        Command::Rekey(args) => match ramphook::rekey(args).await {
            Ok(count) => println!("re-sealed {count} secrets under the new key; start ramphook with the new key now"),
            Err(err) => {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        },
        Command::Verify(args) => std::process::exit(ramphook::cli::verify::run(&args)),
        Command::Listen(args) => {
            if let Err(err) = ramphook::cli::listen::run(args).await {
                eprintln!("error: {err}");
                std::process::exit(1);
            }
        }
    }
}
