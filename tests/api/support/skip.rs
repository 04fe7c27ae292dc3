//! Skipping a test out loud: a test that cannot run here says so on a `SKIPPED <test>: <why>`
//! line, which scripts/test.sh counts into its summary. Written past the test harness's output
//! capture, so the line shows for passing tests too. Under CI (`CI=true`) a missing tool is a
//! failure, not a skip.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// Whether this run is CI's, where every tool must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `module::test` from a function path as `type_name` gives it inside a test.
fn test_name(path: &str) -> &str {
    let mut test = path.strip_prefix("api::").unwrap_or(path);
    while let Some(outer) = test.strip_suffix("::{{closure}}") {
        test = outer;
    }
    test
}

/// Prints the skip line for `test`.
pub fn report_skip(test: &str, why: &str) {
    let test = test_name(test);
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Like `report_skip`, but a failure under CI: for a tool the machine lacks, not for a test that
/// is about the other database backend.
pub fn report_missing_tool(test: &str, why: &str) {
    let test = test_name(test);
    assert!(!in_ci(), "{test}: {why}; CI must run every test");
    report_skip(test, why);
}

/// Ends the test here as skipped: `skip!("only on PostgreSQL")`. With `tool:` first, a failure
/// under CI: `skip!(tool: "no Python with aiosmtpd")`.
macro_rules! skip {
    (tool: $($why:tt)+) => {{
        fn here() {}
        let test = std::any::type_name_of_val(&here).trim_end_matches("::here");
        $crate::support::report_missing_tool(test, &format!($($why)+));
        return;
    }};
    ($($why:tt)+) => {{
        fn here() {}
        let test = std::any::type_name_of_val(&here).trim_end_matches("::here");
        $crate::support::report_skip(test, &format!($($why)+));
        return;
    }};
}
pub(crate) use skip;

/// A Python interpreter that can import `module`: `OTPD_TEST_PYTHON`, else the venv that
/// scripts/test.sh makes under target/. Never installs anything mid-run.
pub fn python_with(module: &str) -> Option<PathBuf> {
    /// Each module asked for, and the interpreter found for it.
    type Found = Vec<(String, Option<PathBuf>)>;
    static FOUND: OnceLock<Mutex<Found>> = OnceLock::new();
    let found = FOUND.get_or_init(Mutex::default);
    if let Some((_, py)) = found.lock().unwrap().iter().find(|(m, _)| m == module) {
        return py.clone();
    }
    let candidate = std::env::var_os("OTPD_TEST_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let venv =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv/bin/python");
            venv.exists().then_some(venv)
        });
    let usable = candidate.filter(|py| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    found
        .lock()
        .unwrap()
        .push((module.to_owned(), usable.clone()));
    usable
}
