//! Captured logs: everything the in-process apps log, for tests that check what a request logged
//! and what never appears. The buffer is shared by every test of the run, so a positive check
//! must pick its own lines (by request id, or by something only its app logs).

use std::sync::{Mutex, OnceLock};

/// Everything the app logged during the whole test run, for tests that check what never appears.
pub fn captured_logs() -> String {
    let buf = log_buffer().lock().unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&buf).into_owned()
}

/// The captured log lines that mention `needle` (a request id, say).
pub fn log_lines_with(needle: &str) -> Vec<String> {
    captured_logs()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Checks that a log line of the request `request_id` contains `text`.
pub fn assert_logged(request_id: &str, text: &str) {
    let lines = log_lines_with(request_id);
    assert!(
        lines.iter().any(|l| l.contains(text)),
        "`{text}` not in the log of request {request_id}: {lines:#?}"
    );
}

/// The `request-id` header of a response: the key to that request's log lines.
pub fn request_id(res: &reqwest::Response) -> String {
    res.headers()["request-id"].to_str().unwrap().to_owned()
}

fn log_buffer() -> &'static Mutex<Vec<u8>> {
    static BUF: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();
    BUF.get_or_init(|| Mutex::new(Vec::new()))
}

struct BufferWriter;

impl std::io::Write for BufferWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        log_buffer()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Sends every app's logs (JSON lines, debug level) to the buffer; once per process.
pub(crate) fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        // As the binary composes it for a plain filter (`telemetry::init`): `LazySpans`, before
        // the line writer, makes a request's span when a line is written in it.
        let _ = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("debug"))
            .with(otpd::request_span::LazySpans::default())
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(|| BufferWriter),
            )
            .try_init();
    });
}
