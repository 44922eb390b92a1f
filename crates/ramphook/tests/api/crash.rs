//! Crash safety and graceful shutdown: once the API answered 201 the webhook
//! is delivered, even if the process is SIGKILLed the next instant.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{wait_until, Backend, Receiver, TestServer};

on_both_backends!(
    shutdown_stops_waiting_after_the_grace_and_the_next_start_sends_again,
    every_accepted_event_is_delivered_after_a_sigkill_and_restart,
    sigterm_lets_in_flight_attempts_finish_and_stops_accepting,
);

async fn every_accepted_event_is_delivered_after_a_sigkill_and_restart(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    // Until the gate opens, the receiver holds every request far longer than
    // the test: nothing is answered before the kill, whatever the load.
    let gate_open = Arc::new(AtomicBool::new(false));
    let receiver = Receiver::start(Arc::new({
        let gate_open = gate_open.clone();
        move |_, _| {
            if gate_open.load(Ordering::SeqCst) {
                (200, Duration::ZERO)
            } else {
                (200, Duration::from_secs(600))
            }
        }
    }))
    .await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let mut accepted = HashSet::new();
    for _ in 0..40 {
        let order = server.order(&pid, "on_ramp").await;
        accepted.insert(server.event(&order, "payment_received").await);
    }
    server.kill().await;
    let held = receiver.received().len();
    gate_open.store(true, Ordering::SeqCst);

    server.launch().await;
    // On PostgreSQL, work the killed process had claimed waits for its lease
    // (delivery timeout + 10 s) to run out.
    wait_until(
        Duration::from_secs(40),
        "every accepted event to be delivered after the restart",
        || async {
            let answered: HashSet<String> = receiver.received()[held..]
                .iter()
                .map(|r| r.webhook_id().to_owned())
                .collect();
            accepted.is_subset(&answered)
        },
    )
    .await;
}

async fn sigterm_lets_in_flight_attempts_finish_and_stops_accepting(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let receiver = Receiver::start(Arc::new(|_, _| (200, Duration::from_millis(700)))).await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    server.event(&order, "payment_received").await;
    receiver.wait_for(1, Duration::from_secs(5)).await; // the attempt is now in flight

    let base = server.base.clone();
    let status = server.terminate().await;
    assert!(status.success(), "clean exit: {status:?}");
    assert!(server.log().contains("shutdown requested"), "{}", server.log());
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "still accepting after shutdown"
    );

    server.launch().await;
    let deliveries = server.deliveries(&pid, "").await;
    assert_eq!(
        deliveries[0]["status"], "delivered",
        "the in-flight attempt finished and was recorded"
    );
    assert_eq!(deliveries[0]["attempts"], 1);
    assert_eq!(receiver.received().len(), 1, "and was not sent again");
}

async fn shutdown_stops_waiting_after_the_grace_and_the_next_start_sends_again(backend: Backend) {
    let mut server = TestServer::start_with(
        backend,
        &[
            ("RAMPHOOK_SHUTDOWN_GRACE", "500ms"),
            ("RAMPHOOK_DELIVERY_TIMEOUT", "60s"),
        ],
    )
    .await;
    // The first request hangs far past the grace; later ones are answered.
    let receiver = Receiver::start(Arc::new(|n, _| {
        if n == 0 {
            (200, Duration::from_secs(600))
        } else {
            (200, Duration::ZERO)
        }
    }))
    .await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let order = server.order(&pid, "on_ramp").await;
    let event = server.event(&order, "payment_received").await;
    receiver.wait_for(1, Duration::from_secs(5)).await;

    let started = std::time::Instant::now();
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );

    server.launch().await;
    let again = receiver.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(again[1].webhook_id(), event, "the unfinished delivery was sent again");
}
