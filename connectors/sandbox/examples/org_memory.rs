//! How much memory and time one emulator takes to serve a large org: this
//! process generates an org of N leads (30 days, about 5 activities per
//! lead), starts the sandbox in-process with a frozen clock at the end of
//! the timeline (so every event is materialised before the listener
//! accepts), answers one small request, and prints the time of each step
//! and the process's resident memory: `VmRSS` now and its peak `VmHWM`,
//! from `/proc/self/status` (Linux).
//!
//! One CRM per process, so the two emulators' numbers never mix (the peak
//! is a process-wide high-water mark). Asserts nothing: timings and memory
//! on a shared machine are for reading, not for tests.
//!
//! Run (an optimised build; LTO off builds much faster and changes little
//! here):
//!
//! ```text
//! CARGO_PROFILE_RELEASE_LTO=off CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
//!   cargo run --release -p handoff-sandbox --example org_memory -- salesforce 100000
//! ... -- hubspot 100000
//! ```
//!
//! Arguments: the CRM (`salesforce` or `hubspot`, default `salesforce`),
//! the number of leads (default 100,000), and optionally `direct`: build
//! the emulator's state straight from the org, without the server (the
//! Salesforce emulator's start also makes an RSA key pair on another
//! thread, whose time varies by seconds from run to run; `direct` times the
//! materialisation alone).

#![allow(clippy::unwrap_used, clippy::expect_used)] // an example fails by panicking

use std::time::Instant;

use handoff_model::CrmKind;
use handoff_sandbox::hubspot::state::HubState;
use handoff_sandbox::org::OrgConfig;
use handoff_sandbox::salesforce::{materialise, oauth::AppConfig, state::SfState};
use handoff_sandbox::server::{start_with_org, ClockMode, SandboxOptions};

#[path = "../benches/support/memory.rs"]
mod memory;

fn report(step: &str, seconds: f64, leads: usize) {
    let (rss, hwm) = memory::rss_mib();
    println!(
        "{step:<28} {seconds:>7.2} s | RSS {rss:>7.0} MiB | peak {hwm:>7.0} MiB ({:>6.0} B per lead)",
        hwm * 1_048_576.0 / leads as f64
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let crm = match args.next().as_deref() {
        None | Some("salesforce") => CrmKind::Salesforce,
        Some("hubspot") => CrmKind::Hubspot,
        Some(other) => panic!("unknown CRM {other:?}: salesforce or hubspot"),
    };
    let leads: usize = args.next().map_or(100_000, |n| n.replace('_', "").parse().expect("a number of leads"));
    let direct = args.next().as_deref() == Some("direct");
    let config = OrgConfig { leads, days: 30, activities_per_lead: Some(5), ..OrgConfig::default() };
    println!("{crm:?}, {leads} leads");
    report("before", 0.0, leads);

    let t = Instant::now();
    let org = handoff_sandbox::generate(&config);
    let generated = t.elapsed().as_secs_f64();
    println!("org: {} users, {} leads, {} timeline events", org.users.len(), org.leads.len(), org.events.len());
    report("generate", generated, leads);

    if direct {
        let t = Instant::now();
        let now = org.config.end_at();
        let held = match crm {
            CrmKind::Salesforce => {
                let app = AppConfig {
                    client_id: "client".into(),
                    client_secret: "secret".into(),
                    username: "integration@example.com".into(),
                    user_id: materialise::integration_user_id(),
                    org_id: "00DHs0000000001AAA".into(),
                    jwt_public_key_pem: String::new(),
                    audiences: Vec::new(),
                    instance_url: "http://127.0.0.1:0".into(),
                };
                let mut st = SfState::new(app);
                materialise::seed(&mut st, &org);
                materialise::catch_up(&mut st, &org, now);
                st.tables.values().map(|t| t.len()).sum::<usize>()
            }
            CrmKind::Hubspot => {
                let mut st = HubState::new();
                st.materialise(&org, now);
                st.stores.values().map(|s| s.len()).sum::<usize>()
            }
        };
        let materialised = t.elapsed().as_secs_f64();
        println!("{held} records");
        report("materialise (state only)", materialised, leads);
        report("generate + materialise", generated + materialised, leads);
        return;
    }

    let mut opts = SandboxOptions::new(crm);
    opts.org = config;
    opts.clock = ClockMode::Frozen;
    let t = Instant::now();
    let sb = start_with_org(opts, org).await.expect("the sandbox starts");
    let started = t.elapsed().as_secs_f64();
    report("materialise + listen", started, leads);
    report("generate + materialise", generated + started, leads);

    // One small request, to show the org is served.
    let http = reqwest::Client::new();
    let token = sb.credentials["access_token"].as_str().unwrap_or_default().to_string();
    let url = match crm {
        CrmKind::Salesforce => {
            format!("{}/services/data/v62.0/query?q=SELECT+COUNT()+FROM+Lead", sb.base_url)
        }
        CrmKind::Hubspot => format!("{}/crm/v3/objects/contacts?limit=1", sb.base_url),
    };
    let t = Instant::now();
    let resp = http.get(url).bearer_auth(token).send().await.expect("request");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    report(&format!("one request ({status})"), t.elapsed().as_secs_f64(), leads);
    println!("  {}", body.chars().take(160).collect::<String>());
    sb.stop().await;
}
