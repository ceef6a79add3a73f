//! The weekly summary and the digests on Slack, against the sandbox's
//! loopback Slack (`handoff_sandbox::slack`): `chat.postMessage` with a bot
//! token, the incoming webhook, a 429 with `Retry-After`, and `ok: false`
//! errors (`invalid_auth`, `channel_not_found`) that `handoff state` and
//! the journal name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::path::Path;
use std::process::{Command, Output};

use chrono::Duration;
use handoff::demo::{SimOptions, Simulation};
use handoff_model::CrmKind;
use handoff_sandbox::slack::{self, SlackFault};

fn secret_file(dir: &Path, name: &str, value: &str) -> toml::Value {
    let path = dir.join(name);
    std::fs::write(&path, format!("{value}\n")).unwrap();
    let mut t = toml::Table::new();
    t.insert("file".into(), path.display().to_string().into());
    t.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_arrives_once_through_a_429() {
    let slack = slack::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut s = toml::Table::new();
    s.insert("bot_token".into(), secret_file(dir.path(), "bot-token", slack::BOT_TOKEN));
    s.insert("channel".into(), slack::CHANNEL.into());
    s.insert("api_url".into(), slack.api_url.clone().into());
    let mut notify = toml::Table::new();
    notify.insert("digests".into(), toml::Value::Array(Vec::new()));
    notify.insert("slack".into(), s.into());
    let mut extra = toml::Table::new();
    extra.insert("notify".into(), notify.into());
    let opts = SimOptions {
        crm: CrmKind::Salesforce,
        seed: 11,
        leads: 60,
        days: 8,
        step: Duration::hours(1),
        config_extra: Some(extra),
        ..SimOptions::new(CrmKind::Salesforce)
    };
    let mut sim = Simulation::start(&opts).await.unwrap();
    // The first post is refused with 429 and Retry-After: 120.
    slack.push_fault(SlackFault::RateLimited { retry_after_secs: 120 });
    let end = sim.end_at();
    sim.run_until(end, |_, _| {}).await.unwrap();
    let posts = slack.posts();
    let weeks: Vec<&str> =
        posts.iter().map(|p| p.text.split("week of ").nth(1).unwrap_or("").split(':').next().unwrap_or("")).collect();
    assert_eq!(weeks, ["Feb 23", "Mar 2"], "one summary per closed week, once each: {posts:?}");
    assert!(posts.iter().all(|p| p.via == "chat.postMessage" && p.channel == slack::CHANNEL));
    assert_eq!(slack.requests(), posts.len() + 1, "one refused request, then each summary once");
    assert!(posts[1].blocks.as_array().is_some_and(|b| !b.is_empty()), "sent as mrkdwn sections");
    let ledger = sim.daemon.store().ledger_entries().unwrap();
    let attempts: Vec<u32> = ledger.iter().filter(|(k, _)| k.starts_with("ws:")).map(|(_, e)| e.attempts).collect();
    assert_eq!(attempts, [2, 1], "the rate-limited summary went on its second attempt");
    let errors = sim.daemon.store().errors(50).unwrap();
    assert!(errors.iter().any(|e| e.phase == "notify:slack" && e.message.contains("rate_limited")), "{errors:?}");
    sim.sandbox.stop().await;
    slack.stop();
}

fn run(args: &[&str], config: &Path) -> Output {
    Command::new(common::binary())
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_errors_are_named_in_handoff_state_and_the_journal() {
    let slack = slack::start().await.unwrap();
    // The whole org visible at once, the clock on Monday 9 March, evening in
    // New York: the digests of the day and the summary of the week of
    // 2 March are due.
    let sb = common::frozen_sandbox(CrmKind::Salesforce, 11, 60, 8, false).await;
    let dir = tempfile::tempdir().unwrap();
    let rep = handoff_sandbox::salesforce::materialise::user_id(5);
    let webhook = slack.webhook_url.clone();
    let api = slack.api_url.clone();
    let d = dir.path().to_path_buf();
    let config = common::write_config(&sb, dir.path(), 1, move |t| {
        let mut s = toml::Table::new();
        s.insert("webhook_url".into(), secret_file(&d, "webhook", &webhook));
        // A token Slack does not know: the digests' direct messages fail.
        s.insert("bot_token".into(), secret_file(&d, "bot-token", "xoxb-0000000000-revoked-token"));
        s.insert("api_url".into(), api.into());
        let mut notify = toml::Table::new();
        notify.insert("digests".into(), toml::Value::Array(vec!["rep".into()]));
        notify.insert("slack".into(), s.into());
        let mut over = toml::Table::new();
        over.insert("slack".into(), "U0REP0001".into());
        let mut recipients = toml::Table::new();
        recipients.insert(rep.clone(), over.into());
        notify.insert("recipients".into(), recipients.into());
        t.insert("notify".into(), notify.into());
    });
    // The webhook's channel was deleted.
    slack.push_webhook_fault(SlackFault::Error("channel_not_found".into()));
    let config2 = config.clone();
    let out = tokio::task::spawn_blocking(move || run(&["run", "--once"], &config2)).await.unwrap();
    let journal = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{journal}");
    for name in ["invalid_auth", "channel_not_found"] {
        assert!(journal.contains(name), "the journal names {name}:\n{journal}");
    }
    assert!(
        !journal.contains("revoked-token") && !journal.contains("sandboxwebhooksecret"),
        "secrets stay out of logs"
    );
    let config3 = config.clone();
    let state = tokio::task::spawn_blocking(move || run(&["state"], &config3)).await.unwrap();
    let text = String::from_utf8_lossy(&state.stdout).to_string();
    assert!(state.status.success(), "{}", String::from_utf8_lossy(&state.stderr));
    assert!(text.contains("failed messages"), "{text}");
    assert!(text.contains("invalid_auth") && text.contains("channel_not_found"), "{text}");
    assert!(text.contains("weekly_summary") && text.contains("rep_digest"), "{text}");
    assert!(!text.contains("revoked-token") && !text.contains("sandboxwebhooksecret"), "{text}");
    assert!(slack.posts().is_empty(), "nothing was accepted");
    // Fixed (the fault is gone): the summary goes on a retry, once.
    let config4 = config.clone();
    let retry = tokio::task::spawn_blocking(move || {
        run(&["state", "--retry-failed"], &config4);
        run(&["run", "--once"], &config4)
    })
    .await
    .unwrap();
    assert!(retry.status.success(), "{}", String::from_utf8_lossy(&retry.stderr));
    let posts = slack.posts();
    assert_eq!(posts.iter().filter(|p| p.via == "webhook").count(), 1, "{posts:?}");
    sb.stop().await;
    slack.stop();
}
