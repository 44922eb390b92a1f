//! Lists as the API pages them: `list_deliveries` (newest first, filters,
//! one partner's) and `list_endpoints` (oldest first), with limits and
//! cursors that visit every row exactly once.

use ramphook::domain::order::EventName;
use ramphook::domain::time::now_ms;
use ramphook::store::{parse_cursor, DeliveryFilter, Store};

use crate::harness::*;

on_both_backends!(delivery_pages_and_filters, endpoint_pages);

/// Every page of `partner`'s deliveries matching `filter`, `limit` at a time.
async fn delivery_pages(store: &Store, partner: &str, filter: &DeliveryFilter, limit: u32) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .list_deliveries(partner, filter, limit, parse_cursor(cursor.as_deref()))
            .await
            .unwrap();
        assert!(page.rows.len() <= limit as usize);
        pages.push(page.rows.iter().map(|d| d.id.clone()).collect());
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.rows.len(), limit as usize, "a page with a next cursor is full");
                cursor = Some(next);
            }
            None => return pages,
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

async fn delivery_pages_and_filters(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let a = endpoint(&store, &p, None).await;
    let b = endpoint(&store, &p, None).await;
    let o1 = order(&store, &p).await;
    let o2 = order(&store, &p).await;
    event(&store, &o1, EventName::PaymentReceived).await;
    event(&store, &o2, EventName::PaymentReceived).await;
    event(&store, &o1, EventName::CryptoTxSent).await;
    let q = partner(&store).await;
    endpoint(&store, &q, None).await;
    let oq = order(&store, &q).await;
    event(&store, &oq, EventName::PaymentReceived).await;

    // Newest first: seq strictly decreasing.
    let everything = store
        .list_deliveries(&p, &DeliveryFilter::default(), 500, None)
        .await
        .unwrap();
    assert!(everything.next_cursor.is_none());
    let rows = everything.rows;
    assert_eq!(rows.len(), 6);
    assert!(rows.windows(2).all(|w| w[0].seq > w[1].seq), "{rows:?}");
    assert!(rows.iter().all(|d| d.partner_id == p));
    let ids: Vec<String> = rows.iter().map(|d| d.id.clone()).collect();

    for limit in 1..=7u32 {
        let pages = delivery_pages(&store, &p, &DeliveryFilter::default(), limit).await;
        assert_eq!(
            pages.len(),
            6usize.div_ceil(limit as usize).max(1),
            "limit {limit}: {pages:?}"
        );
        assert_eq!(pages.concat(), ids, "limit {limit}");
    }
    // A cursor from another list's row still means "older than that row".
    let page = store
        .list_deliveries(&p, &DeliveryFilter::default(), 500, Some(rows[2].seq))
        .await
        .unwrap();
    assert_eq!(page.rows.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), ids[3..]);

    // Filters, alone and together; one is delivered.
    let o2_on_a = rows
        .iter()
        .find(|d| d.order_id == o2 && d.endpoint_id == a)
        .unwrap()
        .id
        .clone();
    assert_eq!(
        claim(&store, LONG_LEASE_MS).await.len(),
        5,
        "the first event of each order and endpoint (4 of p, 1 of q)"
    );
    store
        .record_attempts(&[attempt(&o2_on_a, Some(200), "delivered", now_ms())])
        .await
        .unwrap();
    assert_eq!(count(&store, &p, Some("delivered"), None, None).await, 1);
    assert_eq!(count(&store, &p, Some("pending"), None, None).await, 5);
    assert_eq!(count(&store, &p, Some("failed"), None, None).await, 0);
    assert_eq!(count(&store, &p, None, Some(&o1), None).await, 4);
    assert_eq!(count(&store, &p, None, None, Some(&a)).await, 3);
    assert_eq!(count(&store, &p, None, None, Some(&b)).await, 3);
    assert_eq!(count(&store, &p, None, Some(&o2), Some(&a)).await, 1);
    assert_eq!(count(&store, &p, Some("pending"), Some(&o2), Some(&a)).await, 0);
    assert_eq!(
        count(&store, &p, None, Some(&oq), None).await,
        0,
        "another partner's order"
    );
    let filter = DeliveryFilter {
        status: Some("pending".into()),
        ..Default::default()
    };
    assert_eq!(delivery_pages(&store, &p, &filter, 2).await.concat().len(), 5);
    assert_eq!(all_deliveries(&store, &q).await.len(), 1);
}

/// How many of `partner`'s deliveries match the filter (and each does).
async fn count(
    store: &Store,
    partner: &str,
    status: Option<&str>,
    order: Option<&str>,
    endpoint: Option<&str>,
) -> usize {
    let filter = DeliveryFilter {
        status: status.map(str::to_owned),
        order_id: order.map(str::to_owned),
        endpoint_id: endpoint.map(str::to_owned),
    };
    let rows = deliveries(store, partner, &filter).await;
    for d in &rows {
        assert!(status.is_none_or(|s| d.status == s));
        assert!(order.is_none_or(|o| d.order_id == o));
        assert!(endpoint.is_none_or(|e| d.endpoint_id == e));
    }
    rows.len()
}

async fn endpoint_pages(db: Db) {
    let store = db.open().await;
    let p = partner(&store).await;
    let q = partner(&store).await;
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(endpoint(&store, &p, None).await);
        if i == 2 {
            endpoint(&store, &q, None).await;
        }
    }
    for limit in 1..=6u32 {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = store
                .list_endpoints(&p, limit, parse_cursor(cursor.as_deref()))
                .await
                .unwrap();
            pages += 1;
            assert!(page.rows.len() <= limit as usize);
            assert!(page.rows.iter().all(|e| e.partner_id == p));
            seen.extend(page.rows.iter().map(|e| e.id.clone()));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
            assert!(pages < 100, "paging does not end");
        }
        assert_eq!(seen, mine, "limit {limit}: oldest first, each once");
        assert_eq!(pages, 5usize.div_ceil(limit as usize), "limit {limit}");
    }
    assert_eq!(store.list_endpoints(&q, 50, None).await.unwrap().rows.len(), 1);
}
