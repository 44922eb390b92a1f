//! Disabling an endpoint is never silent: a warning in the log, a metric, and
//! (if `RAMPHOOK_OPS_WEBHOOK_URL` is set) a POST to the operator's webhook.

use std::time::Duration;

use serde_json::json;

use crate::domain::time::{format_ms, now_ms};
use crate::store::{DisabledEndpoint, Store};

#[derive(Clone)]
pub struct Alerts {
    client: reqwest::Client,
    ops_webhook_url: Option<String>,
}

impl Alerts {
    /// The operator's URL is trusted configuration, so it may be internal:
    /// this client does not go through the SSRF guard.
    pub fn new(ops_webhook_url: Option<String>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(crate::outbound::USER_AGENT)
            .build()
            .expect("the HTTP client's settings are valid");
        Self {
            client,
            ops_webhook_url,
        }
    }

    /// The endpoint answered 410 Gone: disable it now.
    pub async fn endpoint_gone(&self, store: &Store, endpoint_id: &str) {
        match store
            .disable_endpoint(endpoint_id, "the endpoint answered 410 Gone")
            .await
        {
            Ok(Some(disabled)) => self.disabled(&disabled),
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, endpoint = endpoint_id, "could not disable a gone endpoint"),
        }
    }

    /// Announces an endpoint ramphook disabled.
    pub fn disabled(&self, endpoint: &DisabledEndpoint) {
        let reason = endpoint.disabled_reason.clone().unwrap_or_default();
        tracing::warn!(endpoint = %endpoint.id, partner = %endpoint.partner_id, %reason,
            "endpoint disabled; its pending deliveries wait until it is enabled again");
        metrics::counter!("ramphook_endpoints_disabled_total").increment(1);
        let Some(url) = self.ops_webhook_url.clone() else {
            return;
        };
        let body = json!({
            "type": "endpoint.disabled",
            "endpointId": endpoint.id,
            "partnerId": endpoint.partner_id,
            "url": endpoint.url,
            "reason": reason,
            "at": format_ms(now_ms()),
        });
        let client = self.client.clone();
        tokio::spawn(async move {
            let request = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Err(err) = request.send().await.and_then(|r| r.error_for_status()) {
                tracing::warn!(error = %err, "the operator webhook did not take the endpoint.disabled alert");
            }
        });
    }
}
