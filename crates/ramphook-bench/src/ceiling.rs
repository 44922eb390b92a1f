//! The receiver's own ceiling: a sender that does nothing else (hyper's
//! HTTP/1.1 client, one keep-alive connection per worker) posts webhook-sized
//! requests at it as fast as it answers, so every other figure can be read
//! knowing the receiver was not the limit.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::metrics::Tracker;

const BODY: &[u8] = br#"{"eventName":"payment_received","orderId":"5a3288ea-0bd4-44d2-af11-aae1f88bbd61","timeStamp":"2022-10-26T22:36:41.658Z","signature":"0000000000000000000000000000000000000000000000000000000000000000"}"#;

/// Requests answered and the time they took.
pub async fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    tracker: Arc<Tracker>,
) -> Result<(u64, Duration), String> {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..connections.max(1) {
        let (done, tracker) = (done.clone(), tracker.clone());
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (mut sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(connection);
            let mut n = 0u64;
            while start.elapsed() < duration {
                sender.ready().await.map_err(|e| e.to_string())?;
                let id = format!("ceiling_{worker}_{n}");
                // The same bookkeeping as a real run: the arrival pairs with this.
                let now = Instant::now();
                tracker.sent(id.clone(), now, now, 1);
                let request = Request::post(format!("http://{addr}/ok/ceiling"))
                    .header("host", addr.to_string())
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .body(Full::new(Bytes::from_static(BODY)))
                    .map_err(|e| e.to_string())?;
                let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let _ = response.into_body().collect().await;
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok((done.load(Ordering::Relaxed), start.elapsed()))
}
