//! The HTML scorecard as people see it: rendered from a simulated fortnight,
//! opened in headless Chromium (Debian's `chromium`), and the screenshot
//! checked for what a TV on the sales floor must show — the trend lines, the
//! dashed targets, and cards marked met (green) and missed (red).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Duration;
use handoff::demo::{SimOptions, Simulation};
use handoff_model::CrmKind;

fn chromium() -> PathBuf {
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!("headless Chromium is needed to check the HTML scorecard: install Debian's `chromium` package (scripts/test and .ci/run do when run as root)");
}

/// Pixels whose colour is within `tol` of `rgb`.
fn count_colour(pixels: &[u8], channels: usize, rgb: [u8; 3], tol: i32) -> usize {
    pixels.chunks(channels).filter(|p| (0..3).all(|i| (i32::from(p[i]) - i32::from(rgb[i])).abs() <= tol)).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_scorecard_shows_its_charts_in_chromium() {
    let browser = chromium();
    let opts = SimOptions {
        crm: CrmKind::Salesforce,
        seed: 5,
        leads: 120,
        days: 14,
        step: Duration::hours(1),
        ..SimOptions::new(CrmKind::Salesforce)
    };
    let mut sim = Simulation::start(&opts).await.unwrap();
    let end = sim.end_at();
    sim.run_until(end, |_, _| {}).await.unwrap();
    let card = sim.scorecard().unwrap();
    assert!(card.weeks.len() >= 2, "a fortnight spans at least two weeks");
    let html = handoff::report::render_html(&card);
    // Self-contained: nothing to fetch.
    for banned in ["<script", "http://", "https://", "src=\"", "@import"] {
        assert!(!html.contains(banned), "the page must open with no network: found {banned}");
    }
    assert!(html.matches("<svg").count() >= card.weeks[0].commitments.len(), "one chart per commitment");

    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("scorecard.html");
    std::fs::write(&page, &html).unwrap();
    let shot = dir.path().join("scorecard.png");
    let out = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1920,2200",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "Chromium wrote no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    if let Ok(keep) = std::env::var("HANDOFF_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }

    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels = &buf[..info.buffer_size()];
    assert!(info.width >= 1_000, "screenshot {}x{}", info.width, info.height);

    let line = count_colour(pixels, channels, [0x5a, 0xb0, 0xff], 30);
    let target = count_colour(pixels, channels, [0xf2, 0xc1, 0x4e], 30);
    let met = count_colour(pixels, channels, [0x2f, 0xbf, 0x71], 30);
    let missed = count_colour(pixels, channels, [0xff, 0x5d, 0x5d], 30);
    println!("pixels: trend lines {line}, targets {target}, met {met}, missed {missed}");
    assert!(line > 2_000, "the trend lines are not drawn ({line} pixels)");
    assert!(target > 1_000, "the dashed target lines are not drawn ({target} pixels)");
    let any_met = card.weeks.last().unwrap().commitments.iter().any(|c| c.met == Some(true));
    let any_missed = card.weeks.last().unwrap().commitments.iter().any(|c| c.met == Some(false));
    if any_met {
        assert!(met > 500, "a met commitment shows green ({met} pixels)");
    }
    if any_missed {
        assert!(missed > 500, "a missed commitment shows red ({missed} pixels)");
    }
    assert!(any_met || any_missed, "the fortnight judged no commitment at all");
    sim.sandbox.stop().await;
}
