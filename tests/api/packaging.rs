//! The operator's files in `packaging/`: the sample configuration passes `otpd check-config` and
//! lists every setting; the systemd unit runs that configuration and is valid for systemd.

use otpd::config::SETTINGS;
use std::path::{Path, PathBuf};
use std::process::Command;

fn packaging(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(name)
}

#[test]
fn the_sample_config_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    // The sample's pepper path exists only under systemd; everything else is taken as written.
    let pepper = dir.path().join("pepper");
    std::fs::write(&pepper, [7u8; 48]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_otpd"))
        .args(["check-config", "--config"])
        .arg(packaging("otpd.toml"))
        .env_clear()
        .env("OTPD_PEPPER_FILE", &pepper)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "mode = production",
        "metrics_listen = 127.0.0.1:9090",
        "oidc_issuer = https://id.example.com/realms/pace",
        "log_format = json",
        "smtp_url = smtp://mail.example.com:587?tls=required",
        "shutdown_grace_seconds = 20",
    ] {
        assert!(stdout.lines().any(|l| l == line), "{line} in\n{stdout}");
    }
}

#[test]
fn the_sample_config_lists_every_setting() {
    let text = std::fs::read_to_string(packaging("otpd.toml")).unwrap();
    for (name, _, _) in SETTINGS {
        let listed = text.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        });
        assert!(listed, "packaging/otpd.toml does not mention `{name}`");
    }
}

/// `key=value` lines of one section of a unit file.
fn section(unit: &str, name: &str) -> Vec<(String, String)> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            inside = line == format!("[{name}]");
        } else if inside && !line.is_empty() && !line.starts_with('#') {
            let (k, v) = line.split_once('=').expect("key=value");
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn the_systemd_unit_serves_the_sample_config_and_outwaits_the_drain() {
    let unit = std::fs::read_to_string(packaging("otpd.service")).unwrap();
    let service = section(&unit, "Service");
    let get = |k: &str| {
        service
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {k}= in [Service]"))
    };
    assert_eq!(
        get("ExecStart"),
        "/usr/local/bin/otpd serve --config /etc/otpd/otpd.toml"
    );
    assert_eq!(get("KillSignal"), "SIGTERM");
    let stop: u64 = get("TimeoutStopSec").parse().unwrap();
    let sample = std::fs::read_to_string(packaging("otpd.toml")).unwrap();
    let table: toml::Table = sample.parse().unwrap();
    let grace = table["shutdown_grace_seconds"].as_integer().unwrap() as u64;
    assert!(
        stop > grace,
        "TimeoutStopSec {stop} must exceed the drain grace {grace}"
    );
    // The pepper path systemd provides is the one the sample config reads.
    assert!(get("LoadCredential").starts_with("pepper:"));
    assert_eq!(
        table["pepper_file"].as_str(),
        Some("/run/credentials/otpd.service/pepper")
    );
    assert!(!section(&unit, "Install").is_empty());

    // systemd's own check, where systemd is installed, with the binary path pointed at this build.
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if available {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("otpd.service");
        std::fs::write(
            &copy,
            unit.replace("/usr/local/bin/otpd", env!("CARGO_BIN_EXE_otpd")),
        )
        .unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.trim().is_empty(), "{stderr}");
    } else {
        eprintln!("systemd-analyze not installed: unit checked by the parser above only");
    }
}
