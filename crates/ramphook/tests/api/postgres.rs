//! PostgreSQL only: several instances on one database, and a database outage.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::common::{wait_until, Backend, Receiver, TestServer};

/// Ten events an on-ramp order can take in a row.
const TEN_EVENTS: [&str; 10] = [
    "payment_received",
    "crypto_tx_sent",
    "crypto_tx_failed",
    "crypto_tx_sent",
    "crypto_tx_failed",
    "crypto_tx_sent",
    "crypto_tx_failed",
    "crypto_tx_sent",
    "crypto_tx_failed",
    "crypto_tx_sent",
];

/// Posts TEN_EVENTS for each order (orders in parallel, each order's events
/// in sequence), alternating between the instances; returns the accepted
/// event ids. Stops posting to an instance once `stop_first` is set.
async fn post_events(bases: Vec<String>, orders: Vec<String>, stop_first: Arc<AtomicBool>) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tasks = JoinSet::new();
    let in_parallel = Arc::new(tokio::sync::Semaphore::new(20));
    for (i, order) in orders.into_iter().enumerate() {
        let (client, bases, stop_first) = (client.clone(), bases.clone(), stop_first.clone());
        let in_parallel = in_parallel.clone();
        tasks.spawn(async move {
            let _turn = in_parallel.acquire_owned().await.unwrap();
            let mut accepted = vec![];
            for (n, event) in TEN_EVENTS.iter().enumerate() {
                let mut pick = (i + n) % bases.len();
                if pick == 0 && stop_first.load(Ordering::SeqCst) {
                    pick = 1;
                }
                // What a careful platform does: on a dead instance or a 503,
                // ask again (the other instance) with the same Idempotency-Key.
                let mut body = None;
                for attempt in 0..20 {
                    let base = if attempt == 0 { &bases[pick] } else { &bases[1] };
                    let response = client
                        .post(format!("{base}/v1/orders/{order}/events"))
                        .bearer_auth(crate::common::ADMIN)
                        .header("idempotency-key", format!("{order}-{n}"))
                        .body(json!({"eventName": event}).to_string())
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 201 => {
                            body = Some(r.json::<serde_json::Value>().await.unwrap());
                            break;
                        }
                        Ok(r) => assert_eq!(r.status(), 503, "only 'unavailable' may be retried"),
                        Err(_) => {} // the killed instance
                    }
                }
                let body = body.expect("accepted within 20 tries");
                accepted.push(body["event"]["id"].as_str().unwrap().to_owned());
            }
            accepted
        });
    }
    let mut all = vec![];
    while let Some(ids) = tasks.join_next().await {
        all.extend(ids.unwrap());
    }
    all
}

async fn two_instances_with_orders(receiver: &Receiver, orders: usize) -> (TestServer, TestServer, Vec<String>) {
    let first = TestServer::start(Backend::Postgres).await;
    let second = first.another_instance().await;
    let (pid, _) = first.partner().await;
    first.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let mut ids = vec![];
    for _ in 0..orders {
        ids.push(first.order(&pid, "on_ramp").await);
    }
    (first, second, ids)
}

#[tokio::test]
async fn two_instances_deliver_every_event_exactly_once_and_in_order() {
    let Some(_) = Backend::postgres().await else { return };
    let receiver = Receiver::ok().await;
    let (first, second, orders) = two_instances_with_orders(&receiver, 100).await;
    let accepted = post_events(vec![first.base.clone(), second.base.clone()], orders, Arc::default()).await;
    assert_eq!(accepted.len(), 1000);

    let got = receiver.wait_for(1000, Duration::from_secs(60)).await;
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for r in &got {
        *per_id.entry(r.webhook_id()).or_default() += 1;
    }
    assert!(
        accepted.iter().all(|id| per_id.get(id.as_str()) == Some(&1)),
        "an event was lost or sent twice"
    );
    assert_eq!(got.len(), 1000);
    // Per order, the events arrived in the order they happened.
    let mut per_order: HashMap<String, Vec<String>> = HashMap::new();
    for r in &got {
        let body = r.json();
        per_order
            .entry(body["orderId"].as_str().unwrap().into())
            .or_default()
            .push(body["eventName"].as_str().unwrap().into());
    }
    assert!(
        per_order.values().all(|names| names == &TEN_EVENTS),
        "an order's events arrived out of order"
    );
    drop(second);
    drop(first);
}

#[tokio::test]
async fn events_survive_one_instance_being_killed_mid_run() {
    let Some(_) = Backend::postgres().await else { return };
    // Slow answers keep deliveries in flight on both instances at the kill.
    let receiver = Receiver::start(Arc::new(|_, _| (200, Duration::from_millis(5)))).await;
    let (mut first, second, orders) = two_instances_with_orders(&receiver, 100).await;
    let stop_first = Arc::new(AtomicBool::new(false));
    let posting = tokio::spawn(post_events(
        vec![first.base.clone(), second.base.clone()],
        orders,
        stop_first.clone(),
    ));
    receiver.wait_for(300, Duration::from_secs(30)).await;
    stop_first.store(true, Ordering::SeqCst);
    first.kill().await;
    let accepted = posting.await.unwrap();
    assert_eq!(accepted.len(), 1000);

    wait_until(
        Duration::from_secs(60),
        "every accepted event to arrive at least once",
        || async {
            let seen: std::collections::HashSet<String> =
                receiver.received().iter().map(|r| r.webhook_id().to_owned()).collect();
            accepted.iter().all(|id| seen.contains(id))
        },
    )
    .await;
    drop(second);
}

/// A TCP proxy to PostgreSQL that a test can cut and restore.
struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    connections: Arc<std::sync::Mutex<JoinSet<()>>>,
}

impl Proxy {
    async fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let connections: Arc<std::sync::Mutex<JoinSet<()>>> = Arc::default();
        let (up2, connections2) = (up.clone(), connections.clone());
        tokio::spawn(async move {
            loop {
                let (mut client, _) = listener.accept().await.unwrap();
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused while cut
                    continue;
                }
                connections2.lock().unwrap().spawn(async move {
                    if let Ok(mut server) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Proxy { port, up, connections }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.connections.lock().unwrap().abort_all();
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_database_outage_answers_503_and_loses_nothing() {
    let Some(_) = Backend::postgres().await else { return };
    // The first attempt of every event fails, so retries are due mid-outage.
    let receiver = Receiver::start(Arc::new({
        let seen = Arc::new(std::sync::Mutex::new(std::collections::HashSet::new()));
        move |_, r| {
            if seen.lock().unwrap().insert(r.webhook_id().to_owned()) {
                (500, Duration::ZERO)
            } else {
                (200, Duration::ZERO)
            }
        }
    }))
    .await;
    let owner = TestServer::start_with(Backend::Postgres, &[("RAMPHOOK_RETRY_SCHEDULE", "0s,1s,1s")]).await;
    let proxy = Proxy::start().await;
    let mut url = url::Url::parse(&owner.database_url()).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    let server = owner.on_database(url.to_string()).await;
    let (pid, _) = server.partner().await;
    server.endpoint(&pid, &receiver.url(), "partner-secret-0001").await;
    let mut accepted = vec![];
    let mut orders = vec![];
    for _ in 0..5 {
        let order = server.order(&pid, "on_ramp").await;
        accepted.push(server.event(&order, "payment_received").await);
        orders.push(order);
    }
    receiver.wait_for(5, Duration::from_secs(5)).await; // first attempts failed

    proxy.cut();
    let started = Instant::now();
    let answer = server
        .admin(
            "POST",
            &format!("/v1/orders/{}/events", orders[0]),
            Some(json!({"eventName": "crypto_tx_sent"})),
        )
        .await;
    assert_unavailable_within_10s(answer, started);
    // A keyed event is looked up by the append reader, on its kept connection.
    let started = Instant::now();
    let answer = keyed_event(&server, &orders[1], "crypto_tx_sent", "outage-1").await;
    assert_unavailable_within_10s(answer, started);
    let (status, _) = server.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 503);
    let (status, _) = server.call("GET", "/healthz", None, None).await;
    assert_eq!(status, 200, "the process itself is fine");

    proxy.restore();
    wait_until(Duration::from_secs(15), "readiness to come back", || async {
        server.call("GET", "/readyz", None, None).await.0 == 200
    })
    .await;
    accepted.push(server.event(&orders[0], "crypto_tx_sent").await);
    let (status, created) = keyed_event(&server, &orders[1], "crypto_tx_sent", "outage-1").await;
    assert_eq!(status, 201, "{created}");
    accepted.push(created["event"]["id"].as_str().unwrap().to_owned());
    wait_until(
        Duration::from_secs(20),
        "every accepted event to be delivered",
        || async {
            let delivered = server.deliveries(&pid, "status=delivered").await;
            accepted
                .iter()
                .all(|id| delivered.iter().any(|d| d["eventId"] == id.as_str()))
        },
    )
    .await;
    drop(server);
    drop(owner);
}

/// A request made at `started` was answered 503 `unavailable`, and promptly.
fn assert_unavailable_within_10s((status, problem): (u16, serde_json::Value), started: Instant) {
    assert_eq!(
        (status, problem["code"].as_str()),
        (503, Some("unavailable")),
        "{problem}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

/// Posts `event` to `order` with an `Idempotency-Key`: the status and the answer.
async fn keyed_event(server: &TestServer, order: &str, event: &str, key: &str) -> (u16, serde_json::Value) {
    let (status, text) = keyed_event_text(server, order, event, key).await;
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn one_idempotency_key_raced_across_instances_makes_one_event() {
    let Some(_) = Backend::postgres().await else { return };
    let receiver = Receiver::ok().await;
    let (first, second, orders) = two_instances_with_orders(&receiver, 1).await;
    let order = &orders[0];
    // Ten at once, alternating between the instances.
    let racers = (0..10).map(|i| {
        let server = if i % 2 == 0 { &first } else { &second };
        keyed_event_text(server, order, "payment_received", "the-one-key")
    });
    let answers: Vec<(u16, String)> = futures_util::future::join_all(racers).await;
    assert!(answers.iter().all(|a| a == &answers[0] && a.0 == 201), "{answers:?}");
    let (_, full) = first.admin("GET", &format!("/v1/orders/{order}"), None).await;
    assert_eq!(full["events"].as_array().unwrap().len(), 1);
    drop(second);
    drop(first);
}

/// Posts `event` to `order` with an `Idempotency-Key`: the status and the
/// answer's text, byte for byte.
async fn keyed_event_text(server: &TestServer, order: &str, event: &str, key: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders/{order}/events", server.base))
        .bearer_auth(crate::common::ADMIN)
        .header("idempotency-key", key)
        .header("content-type", "application/json")
        .body(json!({ "eventName": event }).to_string())
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// An instance appends a keyed event to an order it did not make without
/// reading the order first, and stores what the answer is rendered from:
/// replays on either instance, after the order moved on, answer byte for
/// byte what the first request got.
#[tokio::test]
async fn a_keyed_event_to_another_instances_order_replays_its_first_answer() {
    let Some(_) = Backend::postgres().await else { return };
    let receiver = Receiver::ok().await;
    let (first, second, orders) = two_instances_with_orders(&receiver, 1).await;
    let order = &orders[0];
    let answer = keyed_event_text(&second, order, "payment_received", "paid-once").await;
    assert_eq!(answer.0, 201, "{}", answer.1);
    let created: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
    assert_eq!(created["order"]["status"], "paid", "{created}");
    first.event(order, "crypto_tx_sent").await;

    for server in [&first, &second] {
        assert_eq!(
            keyed_event_text(server, order, "payment_received", "paid-once").await,
            answer
        );
    }
    let (_, full) = first.admin("GET", &format!("/v1/orders/{order}"), None).await;
    assert_eq!(full["events"].as_array().unwrap().len(), 2);
    assert_eq!(full["status"], "crypto_sent");
}
