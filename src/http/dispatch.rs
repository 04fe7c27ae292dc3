//! The API's operations, dispatched by exact path and method to their handlers in front of axum's
//! router. axum's router costs every request a route lookup, two extensions (`MatchedPath` and
//! `UrlParams`, a box each), a clone of the route's boxed service and a second box for its
//! future, and a clone of the handler's service: an eighth of a 401's instructions
//! (docs/benchmark.md, "The night round"). Operations never get route layers: a layer would be
//! skipped here. The table here costs a hash lookup, and calls the handler as axum would
//! (`Handler::call`, the same extractors, the same boxed future).
//!
//! It holds only what it can answer exactly as axum does: an operation's path without parameters
//! (axum's path extractor reads what only its router writes) and the operation's own method.
//! Everything else (another method on the same path, so 405 and HEAD; paths with parameters; the
//! pages, health, metrics, the admin API; unknown paths) goes on to axum's router, which still
//! holds every route, so those answers are unchanged.

use super::AppState;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use utoipa::openapi::path::PathItem;
use utoipa_axum::router::UtoipaMethodRouter;

/// What a handler's call returns (every `async fn` handler's `Handler::Future`).
pub type HandlerFuture = Pin<Box<dyn Future<Output = Response> + Send>>;

type Call = Arc<dyn Fn(Request, AppState) -> HandlerFuture + Send + Sync>;

/// One documented API operation: its documentation and route (what `utoipa_axum::routes!` makes
/// of the handler) and the handler itself, to be called directly.
pub struct Operation {
    pub docs: UtoipaMethodRouter<AppState>,
    call: Call,
}

impl Operation {
    /// `docs` must be what `routes!` made of `handler` alone.
    pub fn new<H, T>(docs: UtoipaMethodRouter<AppState>, handler: H) -> Self
    where
        H: Handler<T, AppState, Future = HandlerFuture>,
        T: 'static,
    {
        Self {
            docs,
            call: Arc::new(move |req, state| handler.clone().call(req, state)),
        }
    }
}

/// The API's operations without path parameters, by full path (base path included) and method.
pub struct ApiTable {
    state: AppState,
    paths: Paths,
}

struct Entry {
    method: Method,
    /// The path as registered, the same text axum's `MatchedPath` would give: the route's label
    /// in logs and metrics.
    template: Arc<str>,
    call: Call,
}

/// An operation found for a request, to be called with it.
pub struct Found<'a> {
    table: &'a ApiTable,
    entry: &'a Entry,
}

impl Found<'_> {
    pub fn template(&self) -> &Arc<str> {
        &self.entry.template
    }

    /// The handler's future for `req` (the request `ApiTable::find` was given).
    pub fn call(self, req: Request) -> HandlerFuture {
        (self.entry.call)(req, self.table.state.clone())
    }
}

type Paths = HashMap<Box<str>, Vec<Entry>, foldhash::fast::RandomState>;

impl ApiTable {
    pub fn new(state: AppState, base_path: &str, operations: &[Operation]) -> Self {
        Self {
            state,
            paths: paths(base_path, operations),
        }
    }

    /// The operation at `req`'s path for its method, if this table answers it.
    pub fn find(&self, req: &Request) -> Option<Found<'_>> {
        let entries = self.paths.get(req.uri().path())?;
        let entry = entries.iter().find(|e| e.method == *req.method())?;
        Some(Found { table: self, entry })
    }
}

/// The operations' paths without parameters, with `base_path` in front, and their methods.
fn paths(base_path: &str, operations: &[Operation]) -> Paths {
    let mut paths = Paths::default();
    for operation in operations {
        for (path, item) in &operation.docs.1.paths {
            if path.contains('{') {
                continue;
            }
            let template: Arc<str> = Arc::from(format!("{base_path}{path}"));
            for method in methods(item) {
                paths.entry(Box::from(&*template)).or_default().push(Entry {
                    method,
                    template: Arc::clone(&template),
                    call: Arc::clone(&operation.call),
                });
            }
        }
    }
    paths
}

/// The methods a path item documents.
fn methods(item: &PathItem) -> impl Iterator<Item = Method> {
    [
        (item.get.is_some(), Method::GET),
        (item.put.is_some(), Method::PUT),
        (item.post.is_some(), Method::POST),
        (item.delete.is_some(), Method::DELETE),
        (item.options.is_some(), Method::OPTIONS),
        (item.head.is_some(), Method::HEAD),
        (item.patch.is_some(), Method::PATCH),
        (item.trace.is_some(), Method::TRACE),
    ]
    .into_iter()
    .filter_map(|(documented, method)| documented.then_some(method))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::openapi;
    use std::collections::BTreeSet;

    /// What the table answers must be exactly the documented operations without path
    /// parameters: a new operation is dispatched by the table without anyone having to remember.
    #[test]
    fn the_table_holds_every_documented_operation_without_path_parameters() {
        let base = "/user/2022-1";
        let operations = openapi::operations();
        let doc = openapi::api_routes(&operations).into_openapi();
        let mut documented = BTreeSet::new();
        let mut with_parameters = 0;
        for (path, item) in &doc.paths.paths {
            for method in methods(item) {
                if path.contains('{') {
                    with_parameters += 1;
                } else {
                    documented.insert((method.to_string(), format!("{base}{path}")));
                }
            }
        }
        let table: BTreeSet<_> = paths(base, &operations)
            .into_iter()
            .flat_map(|(path, entries)| {
                assert!(entries.iter().all(|e| *e.template == *path));
                entries
                    .into_iter()
                    .map(move |e| (e.method.to_string(), path.to_string()))
            })
            .collect();
        assert_eq!(table, documented);
        assert!(table.len() >= 15, "{table:?}");
        assert!(table.contains(&("POST".into(), format!("{base}/user/otp"))));
        // The sessions operation reads a path parameter: axum's router answers it.
        assert_eq!(with_parameters, 1);
    }
}
