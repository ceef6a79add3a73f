//! Staying inside HubSpot's limits against the sandbox, which enforces them
//! on its simulated clock (ticking with real time here): a 429 storm with
//! `Retry-After`, a search pacer faster than the portal's search bucket
//! (`SECONDLY`), and the operator's share of the daily budget (`DAILY`).
//! The sandbox's request log is the evidence: what was sent, when, and
//! what it was answered.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::BTreeSet;

use chrono::Duration;
use common::*;
use handoff_model::{Connector, ConnectorError, Cursor, PullPage, Stream};
use handoff_sandbox::{Fault, LoggedRequest};
use serde_json::json;

fn refused(log: &[LoggedRequest]) -> Vec<&LoggedRequest> {
    log.iter().filter(|r| r.status == 429).collect()
}

fn is_search(r: &LoggedRequest) -> bool {
    r.path.ends_with("/search")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_is_waited_out_without_sending_inside_retry_after_and_the_pull_completes() {
    let sb = sandbox(2_000).await;
    let mut s = settings(&sb);
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;

    // A first page, then the storm: HubSpot answers every call with 429
    // TEN_SECONDLY_ROLLING and Retry-After until it ends.
    let first = c.pull(Stream::Leads, None).await.expect("first page");
    assert!(first.has_more);
    let cursor: Option<Cursor> = first.cursor.clone();
    let storm_from = sb.shared.log.len();
    let storm_end = sb.shared.clock.now() + Duration::seconds(3);
    sb.shared.faults.arm(Fault::RateLimitStorm { until: storm_end });
    let (pages, _) = drain(&c, Stream::Leads, cursor).await;
    let log = log_since(&sb, storm_from);

    let refusals = refused(&log);
    assert_eq!(refusals.len(), 1, "only the first request may meet the storm: {refusals:?}");
    let refusal = refusals[0];
    // The sandbox told the client to wait the storm's remaining whole seconds plus one.
    let left = (storm_end - refusal.at).to_std().unwrap_or_default();
    let retry_after = Duration::seconds(left.as_secs() as i64 + 1);
    let after: Vec<&LoggedRequest> = log.iter().filter(|r| r.at > refusal.at).collect();
    assert!(!after.is_empty());
    for r in &after {
        assert!(
            r.at >= refusal.at + retry_after,
            "{} {} sent {} after the 429, inside Retry-After {retry_after}",
            r.method,
            r.path,
            r.at - refusal.at
        );
    }
    assert!(after.iter().all(|r| r.at >= storm_end), "nothing reached the sandbox during the storm");

    // Nothing lost, nothing twice.
    let mut all = vec![first];
    all.extend(pages);
    let leads = collect_leads(&all);
    let live = live_records(&sb, "contacts").await;
    assert_eq!(leads.keys().collect::<BTreeSet<_>>(), live.keys().collect::<BTreeSet<_>>());
    let used = log_since(&sb, 0).iter().filter(|r| r.counted).count();
    // The backfill listing and the owners listing; the one refused call is
    // the price of the storm.
    let bound = LowerBound {
        list_pages: list_pages(owner_count(&sb)) + list_pages(0) + 1,
        ..LowerBound::all_leads(live.len())
    };
    report("429-storm", used, bound, 1.25);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_pacer_faster_than_the_portal_meets_one_secondly_429_then_slows_down() {
    let sb = sandbox(2_000).await;
    // A portal whose search bucket is smaller than the connector's pacing
    // (as when the setting is above the account's limit, or another app
    // spends the shared bucket): 2 searches a second against 5.
    admin_post(&sb, "/__sandbox/hubspot/limits", json!({"search_per_second": 2})).await;
    let mut s = settings(&sb);
    s.search_per_second = 5;
    s.archived_sweep_secs = 3_600;
    let c = connector(s).await;
    advance(&sb, 60).await;

    let start = sb.shared.log.len();
    let (pages, _) = drain(&c, Stream::Activities, None).await;
    let log = log_since(&sb, start);
    let refusals = refused(&log);
    assert_eq!(refusals.len(), 1, "one SECONDLY refusal, then the pacer holds: {refusals:?}");
    let refusal = refusals[0];
    assert!(is_search(refusal), "the search bucket refused: {refusal:?}");
    // No search inside the second after the refusal.
    let next_search = log.iter().find(|r| r.at > refusal.at && is_search(r)).expect("the pull searched again");
    assert!(
        next_search.at - refusal.at >= Duration::seconds(1),
        "a search went out {} after the SECONDLY 429",
        next_search.at - refusal.at
    );

    let delivered: usize = pages.iter().map(|p| p.activities.len()).sum();
    let mut live = 0;
    let mut bound = LowerBound::default();
    for object in ["calls", "emails", "meetings", "tasks"] {
        let n = live_records(&sb, object).await.len();
        live += n;
        bound.search_pages += common::pages(n, 200);
        bound.list_pages +=
            list_pages(dump(&sb, object, &[], &[]).await.iter().filter(|r| r["archived"] == true).count());
    }
    assert_eq!(delivered, live, "every activity once");
    // One association read per page, plus the refused search.
    report("search-secondly-burst", log.iter().filter(|r| r.counted).count(), bound, 2.1);
    sb.stop().await;
}

/// Pull until the connector stops at the budget (or finishes), keeping the
/// pages and the last cursor.
async fn pull_until_budget(
    c: &handoff_hubspot::HubspotConnector,
    cursor: &mut Option<Cursor>,
    pages: &mut Vec<PullPage>,
) -> Option<std::time::Duration> {
    loop {
        match c.pull(Stream::Leads, cursor.as_ref()).await {
            Ok(page) => {
                if let Some(next) = &page.cursor {
                    *cursor = Some(next.clone());
                }
                let more = page.has_more;
                pages.push(page);
                if !more {
                    return None;
                }
            }
            Err(ConnectorError::Budget { retry_after, .. }) => return Some(retry_after),
            Err(other) => panic!("the pull must stop at the budget, not fail: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_budget_share_stops_the_pull_and_it_resumes_when_the_day_turns() {
    let sb = sandbox(1_500).await;
    let mut s = settings(&sb);
    s.daily_budget_share = 0.5;
    s.archived_sweep_secs = 0;
    let c = connector(s).await;
    advance(&sb, 60).await;
    // The portal has spent almost half of its 650,000 calls today.
    let share = 325_000u64;
    admin_post(&sb, "/__sandbox/hubspot/limits/daily", json!({"used": share - 12})).await;

    let start = sb.shared.log.len();
    let mut cursor = None;
    let mut pages = Vec::new();
    let stopped = pull_until_budget(&c, &mut cursor, &mut pages).await.expect("the pull stops at the operator's share");
    let now = sb.shared.clock.now();
    let midnight = (now.date_naive() + chrono::Days::new(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let to_midnight = (midnight - now).to_std().unwrap_or_default();
    let off = stopped.abs_diff(to_midnight);
    assert!(off <= std::time::Duration::from_secs(60), "paused {stopped:?}, but midnight is {to_midnight:?} away");
    let limits = admin_get(&sb, "/__sandbox/hubspot/limits").await;
    assert!(limits["daily_used"].as_u64().is_some_and(|u| u <= share), "the connector spent past its share: {limits}");
    assert!(refused(&log_since(&sb, start)).is_empty(), "stopping at the share meets no DAILY 429");
    assert!(c.budget().paused_until.is_some());
    // Asking again while paused sends nothing.
    let sent = sb.shared.log.len();
    assert!(matches!(c.pull(Stream::Leads, cursor.as_ref()).await, Err(ConnectorError::Budget { .. })));
    assert_eq!(sb.shared.log.len(), sent, "a paused connector sends nothing");

    // The day turns: HubSpot's count restarts, and the pull goes on from its cursor.
    admin_post(&sb, "/__sandbox/clock", json!({"to": (midnight + Duration::minutes(1)).to_rfc3339()})).await;
    assert!(pull_until_budget(&c, &mut cursor, &mut pages).await.is_none(), "the pull completes the next day");
    let leads = collect_leads(&pages);
    let live = live_records(&sb, "contacts").await;
    assert_eq!(
        leads.keys().collect::<BTreeSet<_>>(),
        live.keys().collect::<BTreeSet<_>>(),
        "nothing lost across the stop"
    );
    // The backfill listing and the owners listing; the page cut short by
    // the stop is read again the next day.
    let bound =
        LowerBound { list_pages: list_pages(owner_count(&sb)) + list_pages(0), ..LowerBound::all_leads(live.len()) };
    report("daily-budget-stop-and-resume", log_since(&sb, start).iter().filter(|r| r.counted).count(), bound, 1.3);

    // Another app spends the whole portal quota: HubSpot answers 429 DAILY,
    // and the connector stops (not fails) until the next day.
    admin_post(&sb, "/__sandbox/hubspot/limits/daily", json!({"used": 650_000})).await;
    let mut s = settings(&sb);
    s.daily_budget_share = 1.0;
    let other = connector(s).await;
    let before = sb.shared.log.len();
    match other.pull(Stream::Leads, None).await {
        Err(ConnectorError::Budget { retry_after, .. }) => assert!(retry_after > std::time::Duration::ZERO),
        other => panic!("a DAILY 429 is a budget stop: {other:?}"),
    }
    let daily: Vec<LoggedRequest> = log_since(&sb, before);
    assert_eq!(daily.iter().filter(|r| r.status == 429).count(), 1, "{daily:?}");
    assert!(matches!(other.pull(Stream::Leads, None).await, Err(ConnectorError::Budget { .. })));
    assert_eq!(log_since(&sb, before).len(), daily.len(), "nothing sent after the DAILY 429");
    sb.stop().await;
}
