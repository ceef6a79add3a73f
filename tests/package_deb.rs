//! The Debian package: `cargo deb` builds it from `[package.metadata.deb]`;
//! this test lists what it holds, unpacks it into a scratch root, runs the
//! unpacked binary on the unpacked examples, and has `systemd-analyze
//! verify` read the unpacked unit.
//!
//! It needs `cargo-deb`, `dpkg-deb` and `systemd-analyze`. `scripts/test`
//! installs cargo-deb and sets `HANDOFF_REQUIRE_PACKAGING=1`, which turns a
//! missing tool into a failure; a bare `cargo test` without them says it
//! skipped the package and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn have(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Builds the package around the binary the tests already built (a debug
/// build: what is checked here is the package, not the optimised binary).
fn build_deb(out_dir: &Path) -> PathBuf {
    let deb = out_dir.join("handoff.deb");
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_handoff"));
    let profile_dir = bin.parent().unwrap();
    // cargo-deb looks for `target/release/handoff` under the profile named.
    let profile = profile_dir.file_name().unwrap().to_str().unwrap();
    let profile = if profile == "debug" { "dev" } else { profile };
    run(Command::new("cargo")
        .args(["deb", "--no-build", "--no-strip", "--fast", "--profile", profile, "--output"])
        .arg(&deb)
        .env("CARGO_TARGET_DIR", profile_dir.parent().unwrap())
        .current_dir(env!("CARGO_MANIFEST_DIR")));
    deb
}

#[test]
fn the_deb_holds_the_service_and_starts_nothing() {
    let tools = have("cargo", &["deb", "--version"]) && have("dpkg-deb", &["--version"]);
    let analyze = have("systemd-analyze", &["--version"]);
    if !(tools && analyze) {
        assert!(
            std::env::var_os("HANDOFF_REQUIRE_PACKAGING").is_none(),
            "cargo-deb, dpkg-deb and systemd-analyze are required (scripts/setup-packaging installs cargo-deb)"
        );
        eprintln!("skipped: cargo-deb, dpkg-deb or systemd-analyze is not installed (scripts/setup-packaging)");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deb = build_deb(tmp.path());

    // What it holds.
    let listing = String::from_utf8(run(Command::new("dpkg-deb").arg("--contents").arg(&deb)).stdout).unwrap();
    let files: Vec<&str> = listing.lines().filter_map(|l| l.split_whitespace().nth(5)).collect();
    for want in [
        "./usr/bin/handoff",
        "./lib/systemd/system/handoff@.service",
        "./etc/handoff/README",
        "./usr/share/doc/handoff/examples/salesforce.example.toml",
        "./usr/share/doc/handoff/examples/hubspot.example.toml",
        "./usr/share/doc/handoff/examples/hubspot-leads.example.toml",
        "./usr/share/doc/handoff/README.md",
        "./usr/share/doc/handoff/copyright",
    ] {
        assert!(files.contains(&want), "the package lacks {want}:\n{listing}");
    }
    let mode = listing.lines().find(|l| l.ends_with("./usr/bin/handoff")).unwrap();
    assert!(mode.starts_with("-rwxr-xr-x"), "the binary is not executable: {mode}");

    // Installing it starts nothing: no maintainer script enables or starts a unit.
    let control = tmp.path().join("control");
    run(Command::new("dpkg-deb").arg("--control").arg(&deb).arg(&control));
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        if let Ok(text) = std::fs::read_to_string(control.join(script)) {
            for word in ["enable", "start", "restart"] {
                assert!(!text.contains(word), "{script} would {word} a unit:\n{text}");
            }
        }
    }
    let fields = String::from_utf8(run(Command::new("dpkg-deb").arg("--field").arg(&deb)).stdout).unwrap();
    assert!(fields.contains("Package: handoff"), "{fields}");
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap_or_default();
    assert!(conffiles.contains("/etc/handoff/README"), "files under /etc are kept on upgrade: {conffiles:?}");

    // Unpacked into a scratch root, the binary judges the examples it ships with.
    let root = tmp.path().join("root");
    run(Command::new("dpkg-deb").arg("--extract").arg(&deb).arg(&root));
    let bin = root.join("usr/bin/handoff");
    for example in ["salesforce.example.toml", "hubspot.example.toml"] {
        run(Command::new(&bin)
            .arg("check")
            .arg("--config")
            .arg(root.join("usr/share/doc/handoff/examples").join(example)));
    }

    // systemd reads the unpacked unit without a complaint, as an instance,
    // with its commands pointing into the scratch root.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/handoff@.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/handoff run"), "the unit runs the packaged binary");
    let units = tmp.path().join("units");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(units.join("handoff@.service"), unit.replace("/usr/bin/handoff", bin.to_str().unwrap())).unwrap();
    std::os::unix::fs::symlink("handoff@.service", units.join("handoff@acme.service")).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(units.join("handoff@acme.service"))
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");
}
