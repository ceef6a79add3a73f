//! OAuth against the sandbox: an access token that expires or is revoked
//! mid-pull costs exactly one re-authentication and no page; a token near
//! `expires_in` is refreshed before it is refused; a rotated refresh token
//! is saved through the `TokenStore` and used on the next start; and a
//! refusal after re-authenticating is reported without any secret.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use common::*;
use handoff_hubspot::{HubspotAuth, MemoryTokenStore, TokenStore};
use handoff_model::{Connector, ConnectorError, Cursor, PullPage, Secret, Stream};
use handoff_sandbox::LoggedRequest;
use serde_json::json;

fn token_calls(log: &[LoggedRequest]) -> usize {
    log.iter().filter(|r| r.path == "/oauth/v1/token").count()
}

fn unauthorized(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter().filter(|r| r.status == 401).collect()
}

/// Pull a few pages, do `between`, then pull to the end; every page and
/// the log from the first pull on.
async fn pull_around<F, Fut>(
    sb: &handoff_sandbox::RunningSandbox,
    c: &handoff_hubspot::HubspotConnector,
    between: F,
) -> (Vec<PullPage>, Vec<LoggedRequest>)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = sb.shared.log.len();
    let mut cursor: Option<Cursor> = None;
    let mut pages = Vec::new();
    for _ in 0..3 {
        let page = c.pull(Stream::Leads, cursor.as_ref()).await.expect("pull");
        cursor = page.cursor.clone().or(cursor);
        assert!(page.has_more, "the org must take more than three pages");
        pages.push(page);
    }
    between().await;
    let (rest, _) = drain(c, Stream::Leads, cursor).await;
    pages.extend(rest);
    (pages, log_since(sb, start))
}

async fn assert_all_leads_once(sb: &handoff_sandbox::RunningSandbox, pages: &[PullPage]) {
    let leads = collect_leads(pages);
    let live = live_records(sb, "contacts").await;
    assert_eq!(leads.keys().collect::<BTreeSet<_>>(), live.keys().collect::<BTreeSet<_>>(), "no page lost, none twice");
}

async fn leads_bound(sb: &handoff_sandbox::RunningSandbox) -> LowerBound {
    // The backfill listing with history, and the owners listing once.
    let live = live_records(sb, "contacts").await.len();
    LowerBound { list_pages: list_pages(owner_count(sb)) + list_pages(0), ..LowerBound::all_leads(live) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_expiring_mid_pull_costs_one_reauthentication_and_no_page() {
    let sb = sandbox(1_500).await;
    let store = Arc::new(MemoryTokenStore::default());
    let mut s = oauth_settings(&sb, store.clone());
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;
    let (pages, log) = pull_around(&sb, &c, || async {
        admin_post(&sb, "/__sandbox/hubspot/tokens/expire", json!({})).await;
    })
    .await;
    assert_all_leads_once(&sb, &pages).await;
    assert_eq!(token_calls(&log), 2, "the first token, then exactly one re-authentication");
    let refusals = unauthorized(&log);
    assert_eq!(refusals.len(), 1, "one request met the expired token: {refusals:?}");
    // A refused token is not counted against the limits; its page is sent again.
    let used = log.iter().filter(|r| r.counted).count();
    report("oauth-token-expired-mid-pull", used, leads_bound(&sb).await, 1.25);
    assert_eq!(store.saves(), 0, "HubSpot returned the same refresh token: nothing to save");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_near_expires_in_is_refreshed_before_any_refusal() {
    let sb = sandbox(1_500).await;
    let store = Arc::new(MemoryTokenStore::default());
    let mut s = oauth_settings(&sb, store);
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;
    // 1,800 s tokens are refreshed 300 s ahead: 1,600 s later is inside that.
    let (pages, log) = pull_around(&sb, &c, || async { advance(&sb, 1_600).await }).await;
    assert_all_leads_once(&sb, &pages).await;
    assert_eq!(token_calls(&log), 2, "one refresh ahead of expiry");
    assert!(unauthorized(&log).is_empty(), "no request met an expired token: {:?}", unauthorized(&log));
    report("oauth-proactive-refresh", log.iter().filter(|r| r.counted).count(), leads_bound(&sb).await, 1.25);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_costs_one_reauthentication_and_a_revoked_grant_fails_without_secrets() {
    let sb = sandbox(1_500).await;
    let store = Arc::new(MemoryTokenStore::default());
    let mut s = oauth_settings(&sb, store);
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;
    let (pages, log) = pull_around(&sb, &c, || async {
        admin_post(&sb, "/__sandbox/hubspot/tokens/revoke", json!({"access_tokens_only": true})).await;
    })
    .await;
    assert_all_leads_once(&sb, &pages).await;
    assert_eq!(token_calls(&log), 2);
    assert_eq!(unauthorized(&log).len(), 1);
    report("oauth-token-revoked-mid-pull", log.iter().filter(|r| r.counted).count(), leads_bound(&sb).await, 1.25);

    // Everything revoked: the one re-authentication is refused, and the
    // error says what to do without carrying a token.
    admin_post(&sb, "/__sandbox/hubspot/tokens/revoke", json!({})).await;
    let start = sb.shared.log.len();
    let err = c.pull(Stream::Leads, None).await.expect_err("a revoked grant cannot pull");
    assert!(matches!(err, ConnectorError::Auth { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("re-authorise") || text.contains("credentials"), "{text}");
    for secret in ["refresh_token", "client_secret", "access_token"] {
        assert!(!text.contains(cred(&sb, secret).as_str()), "the error carries the {secret}: {text}");
    }
    let log = log_since(&sb, start);
    assert_eq!(token_calls(&log), 1, "one re-authentication, then give up: {log:?}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_refresh_token_is_saved_through_the_token_store_and_used_on_the_next_start() {
    let sb = sandbox(1_500).await;
    admin_post(&sb, "/__sandbox/hubspot/tokens/rotation", json!({"enabled": true})).await;
    let store = Arc::new(MemoryTokenStore::default());
    let mut s = oauth_settings(&sb, store.clone());
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;
    let (pages, log) = pull_around(&sb, &c, || async {
        admin_post(&sb, "/__sandbox/hubspot/tokens/expire", json!({})).await;
    })
    .await;
    assert_all_leads_once(&sb, &pages).await;
    assert_eq!(token_calls(&log), 2);
    assert_eq!(store.saves(), 2, "each rotated refresh token is saved");
    let valid =
        admin_get(&sb, "/__sandbox/hubspot/tokens/refresh").await["valid"].as_array().cloned().unwrap_or_default();
    let saved = store.load().expect("store").expect("a saved token");
    assert_eq!(valid, vec![json!(saved.expose())], "the saved token is the one HubSpot accepts now");
    report("oauth-rotated-refresh-token", log.iter().filter(|r| r.counted).count(), leads_bound(&sb).await, 1.25);

    // A new start with the configured (now retired) refresh token finds the saved one.
    let mut s = oauth_settings(&sb, store.clone());
    if let HubspotAuth::OAuth { refresh_token, .. } = &mut s.auth {
        assert_ne!(refresh_token.expose(), saved.expose(), "the configured token was rotated away");
    }
    let again = connector(s).await;
    again.authenticate().await.expect("the saved refresh token authenticates");
    assert_eq!(store.saves(), 3);
    // And the configured token alone would not have.
    let mut s = oauth_settings(&sb, Arc::new(MemoryTokenStore::default()));
    s.auth = match s.auth {
        HubspotAuth::OAuth { client_id, client_secret, token_url, .. } => HubspotAuth::OAuth {
            client_id,
            client_secret,
            refresh_token: Secret::new(cred(&sb, "refresh_token")),
            token_url,
        },
        other => other,
    };
    let stale = connector(s).await;
    assert!(matches!(stale.authenticate().await, Err(ConnectorError::Auth { .. })));
    sb.stop().await;
}
