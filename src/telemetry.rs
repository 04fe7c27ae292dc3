//! Logging set-up for the binary: structured lines, JSON or text, filtered by `OTPD_LOG`.

use crate::config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: in files and pipes they are noise, and
        // formatting them costs measurable CPU per request line (docs/benchmark.md).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
