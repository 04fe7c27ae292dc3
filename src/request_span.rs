//! The request span (`request{request_id=…}`), made only when something is written in it.
//!
//! Every line logged while a request is handled carries the request's id through this span: in
//! text lines `request{request_id=…}:`, in JSON lines `"span":{"request_id":…,"name":"request"}`.
//! Making a span costs a cheap request about 2,000 instructions (a slot in the registry, its field
//! formatted, entering, leaving and closing it; docs/benchmark.md), and most requests write no
//! line in it: a flood of rejections past the line quota writes none at all. So a request carries
//! a [`RequestSpan`], and the span is made
//! - when a line is written while the request is being polled ([`LazySpans`], a layer that sees
//!   each line before the layer that writes it);
//! - when the request's own line is written ([`RequestSpan::in_scope`]);
//! - when the request hands work to a task of its own ([`in_current_request`]).
//!
//! From then on it is entered on every poll of the request ([`InRequest`]), as
//! `tracing::Instrument` would. The span is made by hand (`Dispatch::new_span`, `enter`, `exit`,
//! `try_close`) because the layer makes it while the subscriber is dispatching a line, where
//! `tracing`'s macros find no subscriber.
//!
//! A span opened inside a request before anything was written in it (none is, at `info`) is not a
//! child of the request span: its lines then name their own span only. A log filter with span
//! directives (`[request]=debug`) must see the span before the first line, so with one the span is
//! made when the request starts, as it is under a subscriber without [`LazySpans`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::task::futures::TaskLocalFuture;
use tracing::dispatcher::{self, Dispatch, WeakDispatch};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id};
use tracing::{Event, Instrument, Metadata, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};

/// The span's target: `OTPD_LOG=…,otpd::http::context=warn` turns the request lines and the span
/// off together (docs/operations.md), as when the span was made in `http::context`.
const TARGET: &str = "otpd::http::context";

tokio::task_local! {
    /// The request being polled (set by [`InRequest`] around each poll).
    static CURRENT: Arc<RequestSpan>;
}

/// One request's id and its span, once made.
pub struct RequestSpan {
    id: String,
    made: OnceLock<Made>,
    /// Made and entered during the poll under way, which leaves it at its end ([`InRequest`]).
    entered_in_poll: AtomicBool,
}

struct Made {
    dispatch: Dispatch,
    /// `None`: the span is filtered out.
    id: Option<Id>,
}

impl RequestSpan {
    pub fn new(id: String) -> Arc<Self> {
        // Here, outside any dispatch, the span's callsite is registered the first time.
        let _ = metadata();
        let span = Arc::new(Self {
            id,
            made: OnceLock::new(),
            entered_in_poll: AtomicBool::new(false),
        });
        // Made now unless the subscriber makes it when a line needs it (`LazySpans::default`,
        // registered: a layer wrapped in an `Option` is never told its dispatch).
        dispatcher::get_default(|dispatch| {
            let lazy = dispatch
                .downcast_ref::<LazySpans>()
                .is_some_and(|layer| !layer.eager && layer.dispatch.get().is_some());
            if !lazy {
                span.made(dispatch);
            }
        });
        span
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs `f` in the span (made now if it was not), telling it whether the span is on.
    pub fn in_scope<T>(&self, f: impl FnOnce(bool) -> T) -> T {
        let made = dispatcher::get_default(|dispatch| self.made(dispatch));
        let Some(id) = &made.id else {
            return f(false);
        };
        let _left = Entered::new(&made.dispatch, id);
        f(true)
    }

    fn made(&self, dispatch: &Dispatch) -> &Made {
        self.made.get_or_init(|| Made {
            dispatch: dispatch.clone(),
            id: metadata()
                .filter(|meta| *meta.level() <= LevelFilter::current() && dispatch.enabled(meta))
                .and_then(|meta| {
                    let field = meta.fields().field("request_id")?;
                    let id = tracing::field::display(self.id.as_str());
                    let values = [(&field, Some(&id as &dyn tracing::Value))];
                    let values = meta.fields().value_set(&values);
                    Some(dispatch.new_span(&Attributes::new(meta, &values)))
                }),
        })
    }

    /// During a poll of the request: makes the span and enters it until the poll ends. A span
    /// made before is entered already.
    fn enter_for_this_poll(&self, dispatch: &Dispatch) {
        if self.made.get().is_some() {
            return;
        }
        if let Made {
            dispatch,
            id: Some(id),
        } = self.made(dispatch)
        {
            dispatch.enter(id);
            self.entered_in_poll.store(true, Ordering::Relaxed);
        }
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        if let Some(Made {
            dispatch,
            id: Some(id),
        }) = self.made.take()
        {
            dispatch.try_close(id);
        }
    }
}

impl std::fmt::Debug for RequestSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestSpan").field("id", &self.id).finish()
    }
}

/// The metadata of every request span, from the one callsite all of them share.
fn metadata() -> Option<&'static Metadata<'static>> {
    static META: OnceLock<&'static Metadata<'static>> = OnceLock::new();
    if let Some(meta) = META.get() {
        return Some(meta);
    }
    // A disabled span carries its metadata too; none only while `info` is off everywhere.
    let probe = tracing::info_span!(target: TARGET, "request", request_id = tracing::field::Empty);
    let meta = probe.metadata()?;
    Some(*META.get_or_init(|| meta))
}

/// A span entered by id, left when dropped (also when the code inside panics).
struct Entered<'a> {
    dispatch: &'a Dispatch,
    id: &'a Id,
}

impl<'a> Entered<'a> {
    fn new(dispatch: &'a Dispatch, id: &'a Id) -> Self {
        dispatch.enter(id);
        Self { dispatch, id }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.dispatch.exit(self.id);
    }
}

/// `fut`, a request's handling, polled as the request `span`: see the module doc.
pub fn in_request<F: Future>(span: Arc<RequestSpan>, fut: F) -> InRequest<F> {
    InRequest {
        inner: CURRENT.scope(Arc::clone(&span), fut),
        span,
    }
}

pin_project_lite::pin_project! {
    /// A request's future, see [`in_request`].
    pub struct InRequest<F> {
        #[pin]
        inner: TaskLocalFuture<Arc<RequestSpan>, F>,
        span: Arc<RequestSpan>,
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let span: &RequestSpan = this.span;
        let _entered = span.made.get().and_then(|made| {
            let id = made.id.as_ref()?;
            Some(Entered::new(&made.dispatch, id))
        });
        let _made_now = MadeNow(span);
        this.inner.poll(cx)
    }
}

/// Leaves, at the end of a poll, the span made and entered during it.
struct MadeNow<'a>(&'a RequestSpan);

impl Drop for MadeNow<'_> {
    fn drop(&mut self) {
        if self.0.entered_in_poll.swap(false, Ordering::Relaxed)
            && let Some(Made {
                dispatch,
                id: Some(id),
            }) = self.0.made.get()
        {
            dispatch.exit(id);
        }
    }
}

/// `f` of the id of the request being polled, if one is.
pub fn with_current_id<T>(f: impl FnOnce(&str) -> T) -> Option<T> {
    CURRENT.try_with(|span| f(span.id())).ok()
}

/// `fut` in the span of the request being polled (made now if it was not), for a task the
/// request spawns: its lines carry the request's id. Outside a request: in the current span.
pub fn in_current_request<F: Future>(fut: F) -> tracing::instrument::Instrumented<F> {
    let _ = CURRENT.try_with(|span| dispatcher::get_default(|d| span.enter_for_this_poll(d)));
    fut.in_current_span()
}

/// The layer that makes the request span when a line is written in a request that has none yet.
/// Installed before the layer that writes lines, which then finds the span entered. Without it (a
/// subscriber of its own, say), or with [`LazySpans::eager`], every request's span is made when
/// the request starts, as `tracing::Instrument` would.
#[derive(Default)]
pub struct LazySpans {
    dispatch: OnceLock<WeakDispatch>,
    eager: bool,
}

impl LazySpans {
    /// Every request span made when the request starts: for a filter that selects lines by the
    /// spans they are in (`OTPD_LOG=info,[request]=debug`), which must see the span before the
    /// request's first line to let it through.
    pub fn eager() -> Self {
        Self {
            dispatch: OnceLock::new(),
            eager: true,
        }
    }
}

impl<S: Subscriber> Layer<S> for LazySpans {
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_event(&self, _event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        let _ = CURRENT.try_with(|span| {
            if span.made.get().is_none()
                && let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade)
            {
                span.enter_for_this_poll(&dispatch);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::tests::Lines;
    use std::sync::atomic::AtomicUsize;
    use tracing_subscriber::layer::SubscriberExt;

    /// Counts the spans made and closed.
    #[derive(Clone, Default)]
    struct Spans(Arc<(AtomicUsize, AtomicUsize)>);

    impl<S: Subscriber> Layer<S> for Spans {
        fn on_new_span(&self, _: &Attributes<'_>, _: &Id, _: LayerContext<'_, S>) {
            self.0.0.fetch_add(1, Ordering::SeqCst);
        }
        fn on_close(&self, _: Id, _: LayerContext<'_, S>) {
            self.0.1.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Runs `body` on a current-thread runtime under a subscriber like the binary's (text lines,
    /// `filter`); returns the lines and the spans made and closed.
    fn run(filter: &str, body: impl Future<Output = ()>) -> (String, usize, usize) {
        let targets = filter.parse::<tracing_subscriber::filter::Targets>();
        run_with(targets.unwrap(), LazySpans::default(), body)
    }

    /// `run` with any filter, and `lazy` as the layer (`Identity`: none).
    fn run_with<F, L>(filter: F, lazy: L, body: impl Future<Output = ()>) -> (String, usize, usize)
    where
        F: Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
        L: Layer<tracing_subscriber::layer::Layered<F, tracing_subscriber::Registry>>
            + Send
            + Sync
            + 'static,
    {
        let lines = Lines::default();
        let sink = lines.clone();
        let spans = Spans::default();
        let subscriber = tracing_subscriber::registry()
            .with(filter)
            .with(lazy)
            .with(spans.clone())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .without_time()
                    .with_writer(move || sink.clone()),
            );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tracing::subscriber::with_default(subscriber, || runtime.block_on(body));
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        (
            text,
            spans.0.0.load(Ordering::SeqCst),
            spans.0.1.load(Ordering::SeqCst),
        )
    }

    /// Whether any span is entered on this thread.
    fn in_no_span() -> bool {
        tracing::Span::current().is_none()
    }

    #[test]
    fn a_request_that_writes_nothing_makes_no_span() {
        // The callsite's probe span is made once per process: before the run that counts.
        run("info", async {
            RequestSpan::new("prime".into());
        });
        let (text, made, _) = run("info", async {
            let span = RequestSpan::new("quiet-1".into());
            in_request(Arc::clone(&span), tokio::task::yield_now()).await;
            drop(span);
            assert!(in_no_span());
        });
        assert_eq!(text, "");
        assert_eq!(made, 0);
    }

    #[test]
    fn lines_written_while_a_request_is_polled_carry_its_id() {
        let (text, made, closed) = run("info", async {
            let span = RequestSpan::new("req-7".into());
            in_request(Arc::clone(&span), async {
                tracing::info!("first poll");
                tokio::task::yield_now().await;
                tracing::info!("second poll");
            })
            .await;
            assert!(in_no_span(), "the span is left after every poll");
            span.in_scope(|on| {
                assert!(on);
                tracing::info!("the request line");
            });
            assert!(in_no_span());
            tracing::info!("after the request");
            drop(span);
        });
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        for line in &lines[..3] {
            assert!(line.contains("request{request_id=req-7}:"), "{text}");
        }
        assert!(!lines[3].contains("request{"), "{text}");
        // The request's span was made once, and closed with the request.
        assert_eq!(closed, made, "{made} made, {closed} closed");
    }

    #[test]
    fn a_task_the_request_spawns_writes_in_its_span_made_at_the_spawn() {
        let (text, ..) = run("info", async {
            let span = RequestSpan::new("spawner-3".into());
            let spawned = in_request(span, async {
                let task = tokio::spawn(in_current_request(async {
                    tokio::task::yield_now().await;
                    tracing::warn!("mail not sent");
                }));
                Some(task)
            })
            .await
            .unwrap();
            assert!(in_no_span());
            spawned.await.unwrap();
        });
        assert!(
            text.contains("request{request_id=spawner-3}:") && text.contains("mail not sent"),
            "{text}"
        );
    }

    #[test]
    fn the_id_of_the_request_being_polled_is_at_hand_inside_it_only() {
        run("info", async {
            assert_eq!(with_current_id(str::to_owned), None);
            let span = RequestSpan::new("id-9".into());
            let inside = in_request(span, async {
                tokio::task::yield_now().await;
                with_current_id(str::to_owned)
            });
            assert_eq!(inside.await.as_deref(), Some("id-9"));
            assert_eq!(with_current_id(str::to_owned), None);
        });
    }

    #[test]
    fn without_the_layer_or_for_span_directives_the_span_is_made_when_the_request_starts() {
        let first_poll = |id: &'static str| async move {
            in_request(RequestSpan::new(id.into()), async {
                tracing::info!("first poll");
            })
            .await;
            assert!(in_no_span());
        };
        // A subscriber of its own, without the layer: the first poll's line carries the id.
        let targets = "info"
            .parse::<tracing_subscriber::filter::Targets>()
            .unwrap();
        let none = tracing_subscriber::layer::Identity::new();
        let (text, ..) = run_with(targets, none, first_poll("plain-1"));
        assert!(
            text.contains("request{request_id=plain-1}: ") && text.contains("first poll"),
            "{text}"
        );
        // The layer in an `Option` is never told its dispatch: it could not make the span later.
        let targets = "info"
            .parse::<tracing_subscriber::filter::Targets>()
            .unwrap();
        let (text, ..) = run_with(targets, Some(LazySpans::default()), first_poll("opt-4"));
        assert!(text.contains("request{request_id=opt-4}: "), "{text}");
        // Eager (what `telemetry::init` picks for a filter with span directives, which decides a
        // line by its spans before any layer sees it): made at the start, with nothing written.
        let targets = "info"
            .parse::<tracing_subscriber::filter::Targets>()
            .unwrap();
        let (text, made, closed) = run_with(targets, LazySpans::eager(), async {
            in_request(RequestSpan::new("eager-2".into()), async {}).await;
            assert!(in_no_span());
        });
        assert_eq!((text.as_str(), made, closed), ("", 1, 1));
    }

    #[test]
    fn a_span_filtered_out_is_never_made_and_says_so() {
        let (text, made, _) = run("info,otpd::http::context=warn", async {
            let span = RequestSpan::new("off-1".into());
            in_request(Arc::clone(&span), async {
                tracing::warn!("inside");
            })
            .await;
            span.in_scope(|on| assert!(!on));
            assert!(in_no_span());
        });
        assert!(
            text.contains("inside") && !text.contains("request{"),
            "{text}"
        );
        assert_eq!(made, 0);
    }
}
