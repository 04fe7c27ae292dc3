//! Logging set-up for the binary: structured lines, JSON or text, filtered by `OTPD_LOG`.

use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `log` and `log_format`: what `serve` logs, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing` EnvFilter (checked when the settings are loaded).
    pub filter: String,
    pub format: LogFormat,
}

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
