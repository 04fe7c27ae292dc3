//! Device TOTPs computed by an independent implementation (`pyotp`) are accepted, for every
//! algorithm and digit count otpd offers.
//!
//! The Python interpreter with `pyotp` comes from `OTPD_TEST_PYTHON` (scripts/test.sh makes a venv
//! under target/ and sets it). Without it the test is skipped out loud, except under CI
//! (`CI=true`), where a missing interpreter is a failure.

use crate::support::*;
use otpd::service::ManualClock;
use std::process::Command;
use std::sync::Arc;

fn pyotp_code(python: &std::path::Path, device: &DeviceSecret, unix_secs: i64) -> String {
    let digest = device.settings.algorithm.as_str().to_lowercase();
    let script = format!(
        "import hashlib, pyotp; print(pyotp.TOTP('{}', digits={}, digest=hashlib.{digest}, interval={}).at({unix_secs}))",
        device.secret, device.settings.digits, device.settings.period_secs
    );
    let out = Command::new(python).args(["-c", &script]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn totps_from_pyotp_are_accepted_for_every_algorithm() {
    let Some(python) = python_with("pyotp") else {
        skip!(tool: "no Python with pyotp (run scripts/test.sh, or set OTPD_TEST_PYTHON)")
    };
    let now = 1_800_000_015;
    for (algorithm, digits, period) in [
        ("SHA1", "6", "30"),
        ("SHA256", "8", "30"),
        ("SHA512", "7", "60"),
    ] {
        let clock = Arc::new(ManualClock::new(
            time::OffsetDateTime::from_unix_timestamp(now).unwrap(),
        ));
        let app = TestApp::builder()
            .env("OTPD_TOTP_ALGORITHM", algorithm)
            .env("OTPD_TOTP_DIGITS", digits)
            .env("OTPD_TOTP_PERIOD_SECONDS", period)
            .clock(clock)
            .spawn()
            .await;
        let device = app
            .device_secret("ines", "738e379f-fe30-45ab-819c-ba88804b6368")
            .await;
        assert_eq!(device.settings.algorithm.as_str(), algorithm);
        assert_eq!(device.settings.digits.to_string(), digits);
        assert_eq!(device.settings.period_secs.to_string(), period);
        let code = pyotp_code(&python, &device, now);
        assert_eq!(code.len(), device.settings.digits as usize);
        assert_eq!(code, device.code(now, 0), "{algorithm}");
        let res = app.as_user("ines").verify_as(&code, &["device-totp"]).await;
        assert_eq!(res.status(), 204, "{algorithm}");
    }
}
