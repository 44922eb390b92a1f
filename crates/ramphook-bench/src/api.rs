//! A thin client for the ramphook API calls the bench makes to set up
//! (partners, endpoints, orders, validation), returning ids or a one-line
//! error. Events, the measured calls, go through `event_client.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::event_client::EventClient;

#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(base: &str, token: &str, pool: usize) -> Self {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(pool.max(1))
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .expect("static client settings are valid");
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// Sends `method path` with a JSON body; answers (status, parsed body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), String> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| format!("{path}: {e}"))?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    async fn create(&self, path: &str, body: Value) -> Result<Value, String> {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(&body)).await?;
        if status == 201 {
            Ok(answer)
        } else {
            Err(format!("POST {path} answered {status}: {answer}"))
        }
    }

    pub async fn partner(&self, name: &str) -> Result<String, String> {
        let answer = self.create("/v1/partners", json!({ "name": name })).await?;
        id_of(&answer["id"])
    }

    pub async fn endpoint(&self, partner_id: &str, url: &str) -> Result<String, String> {
        let answer = self
            .create(
                &format!("/v1/partners/{partner_id}/endpoints"),
                json!({ "url": url, "secret": "bench-secret-0123456789abcdef" }),
            )
            .await?;
        id_of(&answer["id"])
    }

    /// An on-ramp order that will not expire during any bench run.
    pub async fn order(&self, partner_id: &str, n: u64) -> Result<String, String> {
        let answer = self
            .create(
                "/v1/orders",
                json!({
                    "partnerId": partner_id,
                    "email": format!("user{n}@bench.example"),
                    "direction": "on_ramp",
                    "expiresInSeconds": 86_400,
                }),
            )
            .await?;
        id_of(&answer["id"])
    }

    /// A client of its own for posting events (`event_client.rs`).
    pub fn event_client(&self) -> Result<EventClient, String> {
        EventClient::new(&self.base, &self.token)
    }
}

fn id_of(value: &Value) -> Result<String, String> {
    value
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no id in the answer: {value}"))
}
