//! ramphook: durable, signed webhooks and validation callbacks for a crypto
//! on/off-ramp payments platform. `serve` wires the pieces together; the
//! modules hold one job each.

pub mod api;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod expiry;
pub mod maintenance;
pub mod master_key;
pub mod net_guard;
pub mod outbound;
pub mod secrets;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod validation;

use std::sync::Arc;
use std::time::Duration;

use config::ServeConfig;
use delivery::dispatcher::{Dispatcher, Wakeup};
use delivery::sender::Sender;
use net_guard::NetGuard;
use store::{Backend, PoolSettings, Store};

/// Runs the API, the dispatcher and the expiry scheduler until SIGTERM/Ctrl-C.
pub async fn serve(config: ServeConfig) -> Result<(), String> {
    let metrics = telemetry::init_metrics();
    raise_file_limit(config.max_in_flight as u64);
    let pool = PoolSettings {
        max_connections: config.database_max_connections,
        ..PoolSettings::default()
    };
    let key = master_key::load(
        config.master_key.as_ref(),
        config.master_key_file.as_deref(),
        &config.database_url,
    )?;
    let store = Store::open(&config.database_url, pool, secrets::Sealer::new(&key))
        .await
        .map_err(|e| format!("cannot open the database (--database-url / RAMPHOOK_DATABASE_URL): {e}"))?;
    let sealed = store
        .seal_plaintext_secrets()
        .await
        .map_err(|e| format!("cannot read the stored secrets: {e}"))?;
    if sealed > 0 {
        tracing::info!(sealed, "sealed secrets stored in clear by an earlier version");
    }
    if store.autovacuum_is_off().await.unwrap_or(false) {
        tracing::warn!(
            "autovacuum is off on this PostgreSQL: every delivery and order update leaves a dead row \
             that only VACUUM reclaims; turn autovacuum on, or VACUUM deliveries, orders and events regularly"
        );
    }
    if store.backend() == Backend::Sqlite {
        // One process per SQLite file: no lease found at start-up is alive.
        store.release_all_leases().await.map_err(|e| e.to_string())?;
    }

    let admin_token: Arc<str> = match &config.admin_token {
        Some(token) if token.len() >= 16 => token.as_str().into(),
        Some(_) => return Err("invalid value for --admin-token (RAMPHOOK_ADMIN_TOKEN): at least 16 characters".into()),
        None => {
            let token = format!("rh_admin_{}", domain::ids::random_hex(24));
            // Printed once, on stdout, so it can be copied; never logged.
            println!("admin token (generated; set RAMPHOOK_ADMIN_TOKEN to keep one): {token}");
            token.into()
        }
    };

    let guard = NetGuard::new(config.allow_cidrs.clone());
    // One keep-alive client for every validation callback, built once.
    let validator = validation::Validator::new(guard.clone());
    let wakeup = Wakeup::default();
    let expiry_alarm = Arc::new(expiry::ExpiryAlarm::default());
    let shutdown = shutdown::on_signal();

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {} (--listen / RAMPHOOK_LISTEN): {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;

    let alerts = delivery::alerts::Alerts::new(config.ops_webhook_url.as_ref().map(|u| u.to_string()));
    let dispatcher = Dispatcher {
        store: store.clone(),
        sender: Sender::new(guard.clone(), config.delivery_timeout, config.max_in_flight as usize),
        schedule: config.retry_schedule.clone(),
        wakeup: wakeup.clone(),
        alerts: alerts.clone(),
        max_in_flight: config.max_in_flight as usize,
        max_in_flight_per_endpoint: config.max_in_flight_per_endpoint,
        throttle_backoff: config.throttle_backoff,
        // Longer than any attempt, so a live instance never loses its claim.
        lease: config.delivery_timeout + Duration::from_secs(10),
        shutdown_grace: config.shutdown_grace,
    };
    let dispatcher = tokio::spawn(dispatcher.run(shutdown.clone()));
    if store.backend() == Backend::Postgres {
        tokio::spawn(wake_on_notify(
            config.database_url.clone(),
            store.instance_id().to_owned(),
            wakeup.clone(),
            shutdown.clone(),
        ));
    }
    let maintenance = tokio::spawn(maintenance::run(
        store.clone(),
        alerts,
        config.disable_after,
        config.retention,
        shutdown.clone(),
    ));
    let expiry = tokio::spawn(expiry::run(
        store.clone(),
        expiry_alarm.clone(),
        wakeup.clone(),
        shutdown.clone(),
    ));

    let rate_limiter = api::rate_limit::RateLimiter::new(config.rate_limit, config.rate_limit_burst);
    if let Some(limiter) = rate_limiter.clone() {
        let shutdown = shutdown.clone();
        // Idle keys' buckets are dropped now and then, so memory stays bounded.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => limiter.shrink(),
                    _ = shutdown.cancelled() => return,
                }
            }
        });
    }
    let state = api::AppState::new(api::Services {
        limits: api::Limits {
            rate_limiter,
            max_endpoints_per_partner: config.max_endpoints_per_partner,
        },
        store: store.clone(),
        admin_token,
        guard,
        deliveries: wakeup,
        expiry: expiry_alarm,
        metrics,
        validator,
    });
    let app = api::router(state, config.max_body_bytes);
    println!("ramphook listening on http://{address}");
    tracing::info!(%address, database = %config.database_url, "ramphook started");
    let server_shutdown = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { server_shutdown.cancelled().await })
        .await
        .map_err(|e| format!("server error: {e}"))?;
    let _ = expiry.await;
    let _ = maintenance.await;
    let _ = dispatcher.await;
    // An append that was already running when the dispatcher stopped may
    // have leased deliveries for it: give them back rather than leave them
    // to their lease.
    let late: Vec<String> = store.handoff().take().into_iter().map(|d| d.id).collect();
    if !late.is_empty() {
        if let Err(err) = store.release(&late).await {
            tracing::warn!(error = %err, count = late.len(), "could not release deliveries; their lease will expire");
        }
    }
    store.close().await;
    tracing::info!("ramphook stopped");
    Ok(())
}

/// `ramphook rekey`: re-seals every stored secret under the new key in one
/// transaction; answers how many values were re-sealed.
pub async fn rekey(args: config::RekeyArgs) -> Result<usize, String> {
    let key = |given: Option<secrets::MasterKey>, file: Option<std::path::PathBuf>, flag: &str| match (given, file) {
        (Some(key), _) => Ok(key),
        (None, Some(path)) => master_key::read(&path).map_err(|e| format!("--{flag}-file: {e}")),
        (None, None) => Err(format!("--{flag} or --{flag}-file is required")),
    };
    let old = key(args.old_key, args.old_key_file, "old-key")?;
    let new = key(args.new_key, args.new_key_file, "new-key")?;
    let store = Store::open(&args.database_url, PoolSettings::default(), secrets::Sealer::new(&new))
        .await
        .map_err(|e| format!("cannot open the database (--database-url / RAMPHOOK_DATABASE_URL): {e}"))?;
    let count = store
        .rekey(&secrets::Sealer::new(&old))
        .await
        .map_err(|e| format!("nothing was changed: {e}"));
    store.close().await;
    count
}

/// PostgreSQL: another instance's commit wakes this instance's dispatcher
/// within milliseconds (LISTEN/NOTIFY); the dispatcher's poll is the fallback
/// while the listener reconnects. This instance's own notifications (signed
/// `own_id`) are ignored: its dispatcher heard of that work directly, and
/// a claim for each of them made a slow partner's every event cost two
/// more statements.
async fn wake_on_notify(url: String, own_id: String, wakeup: Wakeup, shutdown: tokio_util::sync::CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let listener = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen(store::WAKE_CHANNEL).await?;
            loop {
                if listener.recv().await?.payload() != own_id {
                    wakeup.wake();
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = listener => {
                if let Err(err) = result {
                    tracing::warn!(error = %err, "LISTEN connection lost; reconnecting");
                }
            }
            _ = shutdown.cancelled() => return,
        }
        wakeup.wake();
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// File descriptors beside the deliveries in flight: API connections, the
/// database, the listener, logs.
const FILES_BESIDE_DELIVERIES: u64 = 512;

/// Every delivery in flight holds a connection, so a soft `ulimit -n` of
/// 1,024 (systemd's default) would cap `--max-in-flight` with "too many open
/// files". Raises the soft limit to the hard one, as Go's runtime does for
/// every Go server, and warns if even that is too low.
fn raise_file_limit(max_in_flight: u64) {
    let wanted = max_in_flight + FILES_BESIDE_DELIVERIES;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < wanted => tracing::warn!(
            limit,
            wanted,
            "the open-file limit is below --max-in-flight plus the API's connections; raise LimitNOFILE / ulimit -n"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "cannot read or raise the open-file limit"),
    }
}
