//! Validation configurations are kept in memory once read: a change made
//! through a store is seen by it at once, and by another instance (another
//! `Store` on the same database) within `VALIDATION_CONFIG_FRESH_FOR`.

use std::time::Duration;

use ramphook::store::{Store, ValidationRow, VALIDATION_CONFIG_FRESH_FOR};

use crate::harness::*;

on_both_backends!(a_changed_configuration_is_seen_at_once_here_and_soon_elsewhere);

fn config(partner_id: &str, url: &str) -> ValidationRow {
    ValidationRow {
        partner_id: partner_id.into(),
        id: ramphook::domain::ids::new_id("vcfg"),
        url: url.into(),
        auth: r#"{"type":"none"}"#.into(),
        timeout_ms: 1000,
        on_error: "deny".into(),
        cache_ttl_seconds: 0,
        created_at: 0,
        updated_at: 0,
    }
}

async fn url_seen(store: &Store, partner_id: &str) -> Option<String> {
    store.get_validation(partner_id).await.unwrap().map(|row| row.url)
}

/// Waits, at most twice the freshness bound and a second, for `other` to
/// see `expected`.
async fn seen_soon(other: &Store, partner_id: &str, expected: Option<&str>) {
    let deadline = tokio::time::Instant::now() + VALIDATION_CONFIG_FRESH_FOR * 2 + Duration::from_secs(1);
    while url_seen(other, partner_id).await.as_deref() != expected {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other instance still does not see {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn a_changed_configuration_is_seen_at_once_here_and_soon_elsewhere(db: Db) {
    let (here, elsewhere) = (db.open().await, db.open().await);
    let p = partner(&here).await;
    // Both have read (and keep) "no configuration".
    assert_eq!(url_seen(&here, &p).await, None);
    assert_eq!(url_seen(&elsewhere, &p).await, None);

    here.put_validation(config(&p, "https://a.example/check"))
        .await
        .unwrap();
    assert_eq!(url_seen(&here, &p).await.as_deref(), Some("https://a.example/check"));
    seen_soon(&elsewhere, &p, Some("https://a.example/check")).await;

    here.put_validation(config(&p, "https://b.example/check"))
        .await
        .unwrap();
    assert_eq!(url_seen(&here, &p).await.as_deref(), Some("https://b.example/check"));
    seen_soon(&elsewhere, &p, Some("https://b.example/check")).await;

    assert!(here.delete_validation(&p).await.unwrap());
    assert_eq!(url_seen(&here, &p).await, None);
    seen_soon(&elsewhere, &p, None).await;
}
