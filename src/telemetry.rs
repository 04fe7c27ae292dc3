//! Logging set-up for the binary: structured lines, JSON or text, filtered by `OTPD_LOG`.
//!
//! One event is one line, whatever a client managed to get into a field (a token header's `alg`
//! inside a parse error, say): in text lines every control character of every field is escaped
//! ([`EscapedFields`]); JSON lines escape them by construction (serde_json writes `\n`, `\u001b`).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

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
    /// `log_rejected_requests`: how many request lines of 4xx answers are written; `None`: all.
    pub rejected_lines: Option<crate::http::rate_limit::RateQuota>,
}

pub fn init(filter: &str, format: LogFormat) {
    let (targets, env) = filter_of(filter);
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal: in files and pipes they are noise, and
        // formatting them costs measurable CPU per request line (docs/benchmark.md).
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // `LazySpans` before the line writer: it makes a request's span when a line is written in it,
    // or, for EnvFilter's span directives, when the request starts.
    let spans = match env {
        Some(_) => crate::request_span::LazySpans::eager(),
        None => crate::request_span::LazySpans::default(),
    };
    let filtered = tracing_subscriber::registry()
        .with(targets)
        .with(env)
        .with(spans);
    let _ = match format {
        LogFormat::Json => filtered
            .with(lines.json().flatten_event(true).with_current_span(true))
            .try_init(),
        LogFormat::Text => filtered.with(lines.fmt_fields(EscapedFields)).try_init(),
    };
}

/// The filter `OTPD_LOG` asks for, as exactly one of the two. Plain `target=level` directives
/// (`info`, `info,otpd::http::context=warn`: every filter the docs show) make a `Targets` filter,
/// decided once per call site. EnvFilter is kept for what only it understands (span and field
/// directives): it looks up every span's entry and exit under a lock shared by all threads, a
/// measurable share of a cheap request (docs/benchmark.md).
fn filter_of(filter: &str) -> (Option<Targets>, Option<EnvFilter>) {
    // `Targets` would take `[span]` or `{field}` for part of a target name: those go to EnvFilter
    // before it is asked.
    let plain = !filter.contains(['[', '{']);
    match filter.parse::<Targets>() {
        Ok(targets) if plain => (Some(targets), None),
        _ => {
            let env = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
            (None, Some(env))
        }
    }
}

/// The text format's fields (the message included), with [`escape_controls`] applied, so that no
/// value can end the line, start a forged one, or send escape sequences to a terminal.
#[derive(Default)]
pub struct EscapedFields;

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        // Formatted without colours: the escaping must not touch our own escape codes, and field
        // names in italics are not worth a second code path. Formatted into this thread's
        // scratch buffer, escaped and written in one piece: the fields of every request's span
        // are formatted when it is made, and writing them piece by piece into the span's fresh
        // string grew it several times (docs/benchmark.md).
        SCRATCH.with(|scratch| {
            // Busy only if a value's `Display` formats fields itself: then a buffer of its own.
            let mut own = String::new();
            let mut held = scratch.try_borrow_mut();
            let buf = match held.as_deref_mut() {
                Ok(scratch) => scratch,
                Err(_) => &mut own,
            };
            buf.clear();
            let mut visitor = PlainFields {
                buf: &mut *buf,
                is_empty: true,
                result: Ok(()),
            };
            fields.record(&mut visitor);
            let written = visitor
                .result
                .and_then(|()| writer.write_str(&escape_controls(buf)));
            if buf.capacity() > MAX_SCRATCH {
                *buf = String::new();
            }
            written
        })
    }
}

/// The fields as tracing-subscriber's `DefaultVisitor` writes them without colours, the plain
/// `name=value` ones (every field of a request's span and line) written directly: its
/// `DefaultVisitor` paints name and `=` and formats the three through nested `write!`s, ~1,500
/// instructions for the one field of every request's span (docs/benchmark.md). The message,
/// errors, `r#` names and `log.` fields are left to `DefaultVisitor` itself.
struct PlainFields<'a> {
    buf: &'a mut String,
    is_empty: bool,
    result: fmt::Result,
}

impl PlainFields<'_> {
    fn delegate(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let before = self.buf.len();
        let mut visitor = DefaultVisitor::new(Writer::new(&mut *self.buf), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty &= self.buf.len() == before;
    }
}

impl Visit for PlainFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.delegate(|v| v.record_str(field, value)),
            _ => self.record_debug(field, &value),
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.delegate(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name == "message" || name.starts_with("r#") || name.starts_with("log.") {
            return self.delegate(|v| v.record_debug(field, value));
        }
        if !std::mem::take(&mut self.is_empty) {
            self.buf.push(' ');
        }
        self.buf.push_str(name);
        self.buf.push('=');
        self.result = write!(self.buf, "{value:?}");
    }
}

thread_local! {
    static SCRATCH: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A scratch buffer grown past this by one long event is given back rather than kept.
const MAX_SCRATCH: usize = 4096;

/// `text` with every character that could break or disguise a log line written as a visible
/// escape (`\n`, `\r`, `\u{1b}`, …): C0 and C1 controls and DEL, the Unicode line and paragraph
/// separators, and the bidirectional overrides that make a line read differently than it is.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    // Printable ASCII (ids, routes, most values) holds none of them: one pass over the bytes.
    if text.bytes().all(|b| (b' '..b'\x7f').contains(&b)) || !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::{escape_controls, filter_of};
    use tracing::Level;

    #[test]
    fn plain_level_lists_are_targets_and_span_directives_keep_the_env_filter() {
        let (targets, env) = filter_of("info,otpd::http::context=warn");
        let targets = targets.expect("a Targets filter");
        assert!(env.is_none());
        assert!(targets.would_enable("otpd::app", &Level::INFO));
        assert!(!targets.would_enable("otpd::http::context", &Level::INFO));
        assert!(targets.would_enable("otpd::http::context", &Level::WARN));
        assert!(!targets.would_enable("otpd::app", &Level::DEBUG));

        for spans in ["info,[request]=debug", "otpd[request{request_id=x}]=debug"] {
            let (targets, env) = filter_of(spans);
            assert!(targets.is_none(), "{spans}");
            assert!(env.is_some(), "{spans}");
        }
    }

    #[test]
    fn text_lines_escape_span_and_event_fields_however_long() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .fmt_fields(super::EscapedFields)
            .finish();
        let long = "y".repeat(2 * super::MAX_SCRATCH);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = %"r1\u{1b}[2J");
            let _in = span.enter();
            tracing::info!(reason = %"a\nFORGED", "first");
            tracing::info!(reason = %long, "second");
            tracing::info!(reason = %"b\r", "third");
        });
        let out = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(out.contains("request{request_id=r1\\u{1b}[2J}"), "{out}");
        assert!(out.contains("reason=a\\nFORGED"), "{out}");
        assert!(out.contains(&format!("reason={long}")), "{out}");
        assert!(out.contains("third reason=b\\r"), "{out}");
        assert!(!out.contains('\u{1b}') && !out.contains('\r'), "{out}");
    }

    /// The fields of every kind of event otpd writes come out as tracing-subscriber's own
    /// `DefaultFields` writes them (without colours), apart from the escaping.
    #[test]
    fn text_fields_are_written_as_tracing_subscriber_writes_them() {
        #[derive(Debug)]
        struct Cause;
        impl std::fmt::Display for Cause {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the cause")
            }
        }
        impl std::error::Error for Cause {}
        #[derive(Debug)]
        struct Outer(Cause);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("the failure")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let failure = Outer(Cause);
        let plain = std::io::Error::other("plain failure");
        let emit = || {
            let span = tracing::info_span!("request", request_id = %"r1", r#type = "x", n = 3);
            let _in = span.enter();
            tracing::info!(left_out = 5u64, "request lines left out");
            tracing::info!(method = %"POST", route = "/a", status = 401u16, latency_ms = 0.25f64, client_id = "", "request");
            tracing::warn!(
                error = &failure as &dyn std::error::Error,
                retry = true,
                "failed"
            );
            tracing::warn!(error = &plain as &dyn std::error::Error, delta = -7i64);
            tracing::info!(message = "only a message");
            tracing::info!(quoted = "a \"quote\"", debug = ?Some(1), "fields after");
            span.record("n", 4);
            tracing::info!("after a record");
        };
        let ours = lines_of(super::EscapedFields, emit);
        let theirs = lines_of(tracing_subscriber::fmt::format::DefaultFields::new(), emit);
        assert_eq!(ours, theirs);
        assert_eq!(ours.lines().count(), 7, "{ours}");
    }

    fn lines_of<N>(fields: N, emit: impl Fn()) -> String
    where
        N: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(move || sink.clone())
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(lines.0.lock().unwrap().clone()).unwrap()
    }

    /// Lines written by a test's subscriber (also `request_span`'s tests).
    #[derive(Clone, Default)]
    pub(crate) struct Lines(pub(crate) std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_untouched() {
        assert_eq!(
            escape_controls("reason=plain text é"),
            "reason=plain text é"
        );
        assert_eq!(
            escape_controls("a\r\nINFO forged\u{1b}[2J\u{7f}\u{9b}\u{2028}\u{202e}\tz"),
            "a\\r\\nINFO forged\\u{1b}[2J\\u{7f}\\u{9b}\\u{2028}\\u{202e}\\tz"
        );
        // The edges of the printable-ASCII shortcut, each alone in otherwise plain text.
        assert_eq!(escape_controls("id-1 ~"), "id-1 ~");
        assert_eq!(escape_controls("id\u{7f}"), "id\\u{7f}");
        assert_eq!(escape_controls("id\u{1f}"), "id\\u{1f}");
        assert_eq!(escape_controls("\u{202e}id"), "\\u{202e}id");
    }
}
