//! Connection slots of one listener: who holds them, which of them carry a request, and which one
//! gives way when all are taken.
//!
//! A connection that carries no request must never keep out one that would: when every slot is
//! taken, the accept loop asks the idle connection that has waited longest (one that never sent
//! a request first) to close, instead of leaving the newcomer in the kernel's backlog. A
//! connection that sends no first request within `first_request_timeout`, or stays without a
//! request for `idle_timeout`, closes by itself; HTTP/1 and HTTP/2 alike. Per source address at
//! most `max_connections_per_address` slots are held (off behind a proxy, where every connection
//! comes from the proxy).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Why a connection is asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// The server is shutting down: requests in flight may finish.
    Shutdown,
    /// Every slot was taken and a new connection arrived; this one carried no request.
    Evicted,
    /// No first request within `first_request_timeout`.
    FirstRequestTimeout,
    /// No request for `idle_timeout`.
    IdleTimeout,
    /// An HTTP/1 request's head did not end within `header_read_timeout` of its first byte.
    HeaderReadTimeout,
}

impl Close {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Close::Shutdown => "shutdown",
            Close::Evicted => "evicted",
            Close::FirstRequestTimeout => "first-request-timeout",
            Close::IdleTimeout => "idle-timeout",
            Close::HeaderReadTimeout => "header-read-timeout",
        }
    }
}

/// The limits the slots enforce (from `ServerSettings`).
#[derive(Debug, Clone, Copy)]
pub struct SlotLimits {
    pub max_connections: usize,
    pub max_per_address: Option<usize>,
    pub first_request_timeout: Duration,
    pub idle_timeout: Duration,
    /// An HTTP/1 request's head must end within this of its first byte (`head_bytes_arrived`).
    pub header_read_timeout: Duration,
}

/// What became of a new connection at the door.
pub enum Admission {
    Admitted(Slot),
    /// Its address already holds `max_per_address` slots.
    AddressFull,
    /// Every slot is taken by a connection with a request in flight: wait for `Slots::freed`.
    Full,
}

pub struct Slots {
    limits: SlotLimits,
    state: Mutex<State>,
    /// Signalled whenever a slot is released or a connection becomes idle (and so may give way).
    freed: Arc<Freed>,
}

/// What `Slots::freed` waits on. A slot released always signals it; a connection that turns idle
/// only while someone waits (`waiting`): every request ends by turning its connection idle, and
/// `Notify::notify_waiters` takes a lock and writes a counter that all connections share, a
/// cache line the cores would pass back and forth on every request for a wait that happens only
/// when every slot is taken.
struct Freed {
    notify: Notify,
    waiting: AtomicUsize,
}

impl Freed {
    /// A connection turned idle. `waiting` is raised before the waiter looks at the connections,
    /// and read here after the connection's activity was updated under its lock: either the waiter
    /// sees this connection idle, or this sees the waiter (both orders are sequentially
    /// consistent), so no wake-up a waiter needs is skipped.
    fn became_idle(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.notify.notify_waiters();
        }
    }
}

/// Counts a waiter of `Slots::freed` for as long as its future lives.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    /// In accept order, so the oldest candidate for eviction comes first.
    open: BTreeMap<u64, Arc<Connection>>,
    per_address: HashMap<IpAddr, usize>,
    draining: bool,
}

/// One open connection's activity, shared by its task, its service and the accept loop.
pub struct Connection {
    activity: Mutex<Activity>,
    /// Wakes the connection's watchdog: it was asked to close, or a request ended and the
    /// connection's idle deadline is now earlier than when the watchdog looks next (the first
    /// request's end, when `idle_timeout` is shorter than `first_request_timeout`). Otherwise a
    /// request that starts or ends only moves the deadline later, which the watchdog finds when
    /// it looks: no wake-up per request, which would cost a cheap request a task wake and a timer.
    changed: Notify,
    idle_timeout: Duration,
    /// The slots' `freed`: a connection that turns idle may be what a waiting newcomer needs.
    became_idle: Arc<Freed>,
}

struct Activity {
    in_flight: usize,
    served: u64,
    /// When the connection was accepted, or last became idle.
    idle_since: Instant,
    /// When the first bytes of the next HTTP/1 request head arrived, while the head is not
    /// complete (`None`: nothing arrived since the last request started).
    head_started: Option<Instant>,
    close: Option<Close>,
    /// When the watchdog looks next.
    watched_until: Option<Instant>,
}

/// A held slot; released (and the accept loop told) when dropped.
pub struct Slot {
    slots: Arc<Slots>,
    id: u64,
    address: IpAddr,
    pub connection: Arc<Connection>,
}

impl Slots {
    pub fn new(limits: SlotLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            state: Mutex::default(),
            freed: Arc::new(Freed {
                notify: Notify::new(),
                waiting: AtomicUsize::new(0),
            }),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a slot for a connection from `address`. When every slot is taken, asks the longest
    /// idle connection to give its slot up and answers `Full`; the caller waits for `freed`.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Admission {
        let mut state = self.state();
        if let Some(max) = self.limits.max_per_address
            && state.per_address.get(&address).copied().unwrap_or(0) >= max
        {
            return Admission::AddressFull;
        }
        if state.open.len() >= self.limits.max_connections {
            // One eviction at a time is enough: its slot is what this newcomer waits for.
            let already_leaving = state
                .open
                .values()
                .any(|c| c.activity().close == Some(Close::Evicted));
            if !already_leaving {
                evict_one(&state);
            }
            return Admission::Full;
        }
        let id = state.next_id;
        state.next_id += 1;
        let connection = Arc::new(Connection {
            activity: Mutex::new(Activity {
                in_flight: 0,
                served: 0,
                idle_since: Instant::now(),
                head_started: None,
                close: state.draining.then_some(Close::Shutdown),
                watched_until: None,
            }),
            changed: Notify::new(),
            idle_timeout: self.limits.idle_timeout,
            became_idle: Arc::clone(&self.freed),
        });
        state.open.insert(id, Arc::clone(&connection));
        *state.per_address.entry(address).or_default() += 1;
        Admission::Admitted(Slot {
            slots: Arc::clone(self),
            id,
            address,
            connection,
        })
    }

    /// Completes when a slot may have been released, or a connection may have become able to
    /// give way, since the returned future was created.
    pub fn freed(&self) -> impl Future<Output = ()> + '_ {
        // Counted and armed now, before the caller looks at the slots (`Freed::became_idle`).
        self.freed.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(&self.freed.waiting);
        let notified = self.freed.notify.notified();
        async move {
            let _waiting = waiting;
            notified.await;
        }
    }

    pub fn open(&self) -> usize {
        self.state().open.len()
    }

    /// Asks every connection to finish its requests and close (shutdown).
    pub fn drain(&self) {
        let mut state = self.state();
        state.draining = true;
        for c in state.open.values() {
            c.ask_to_close(Close::Shutdown);
        }
    }

    pub fn limits(&self) -> SlotLimits {
        self.limits
    }
}

/// Picks the connection to give way: idle ones only; among them one that never sent a request,
/// else the one idle longest.
fn evict_one(state: &State) {
    let mut best: Option<(&Arc<Connection>, bool, Instant)> = None;
    for c in state.open.values() {
        let a = c.activity();
        if a.in_flight > 0 || a.close.is_some() {
            continue;
        }
        let never = a.served == 0;
        let better = match best {
            None => true,
            Some((_, best_never, best_since)) => {
                (never && !best_never) || (never == best_never && a.idle_since < best_since)
            }
        };
        if better {
            best = Some((c, never, a.idle_since));
        }
    }
    if let Some((c, ..)) = best {
        c.ask_to_close(Close::Evicted);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut state = self.slots.state();
        state.open.remove(&self.id);
        if let Some(n) = state.per_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                state.per_address.remove(&self.address);
            }
        }
        drop(state);
        self.slots.freed.notify.notify_waiters();
    }
}

impl Connection {
    fn activity(&self) -> MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ask_to_close(&self, why: Close) {
        let mut a = self.activity();
        if a.close.is_none() || why == Close::Shutdown {
            a.close = Some(why);
        }
        drop(a);
        self.changed.notify_one();
    }

    /// Bytes arrived on an HTTP/1 connection (`server::HeadWatch`). With no request in flight
    /// they begin the next request's head, which must end within `header_read_timeout` from now.
    /// The watchdog is not woken for it (that would cost every request a wake-up): it looks
    /// again at least every `header_read_timeout`, so it still closes the connection on time.
    /// Bytes of a body that hyper drains after its response also count as a head begun: a
    /// client that then stays silent is closed `header_read_timeout` later, not `idle_timeout`.
    pub fn head_bytes_arrived(&self) {
        let mut a = self.activity();
        if a.in_flight == 0 && a.head_started.is_none() {
            a.head_started = Some(Instant::now());
        }
    }

    /// A request arrived; returns how many this connection has served, this one included. The
    /// request counts as in flight until the guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> (u64, InFlight) {
        let mut a = self.activity();
        a.in_flight += 1;
        a.served += 1;
        a.head_started = None;
        let served = a.served;
        drop(a);
        (served, InFlight(Arc::clone(self)))
    }

    /// Whether the connection ever carried a request.
    pub fn served_any(&self) -> bool {
        self.activity().served > 0
    }

    /// Completes when the connection should close, and says why: asked to (shutdown, eviction),
    /// or its first request, its next request or the rest of a request's head did not come in
    /// time.
    ///
    /// Requests rarely wake it: a request that starts or ends moves the deadline later, except
    /// when it ends before a deadline the watchdog waits for (`Connection::changed`), so the
    /// watchdog sleeps until the deadline it last saw and looks again then, but never later than
    /// one `header_read_timeout` from now (a head that begins meanwhile does not wake it). A
    /// connection still closes `idle_timeout` after its last request ended, and a head that began
    /// `header_read_timeout` after its first byte.
    pub async fn close_requested(&self, limits: SlotLimits) -> Close {
        loop {
            let changed = self.changed.notified();
            let at = {
                let mut a = self.activity();
                let now = Instant::now();
                // Decided under the lock, so a request that starts right now is not cut off.
                let at = match a.due(limits, now) {
                    Due::Close(why) => {
                        a.close = Some(why);
                        return why;
                    }
                    Due::At(at) => at.min(now + limits.header_read_timeout),
                    // Nothing is due before the request ends, and then not before idle_timeout.
                    Due::Busy => now + limits.idle_timeout.min(limits.header_read_timeout),
                };
                a.watched_until = Some(at);
                at
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(at) => {}
            }
        }
    }
}

/// What a connection's watchdog does next.
#[derive(Debug, PartialEq, Eq)]
enum Due {
    Close(Close),
    /// Look again then, unless something changes first.
    At(Instant),
    /// A request is in flight: nothing is due until it ends.
    Busy,
}

impl Activity {
    fn due(&self, limits: SlotLimits, now: Instant) -> Due {
        if let Some(why) = self.close {
            return Due::Close(why);
        }
        let (mut at, mut why) = match (self.in_flight, self.served) {
            (0, 0) => (
                self.idle_since + limits.first_request_timeout,
                Close::FirstRequestTimeout,
            ),
            (0, _) => (self.idle_since + limits.idle_timeout, Close::IdleTimeout),
            _ => return Due::Busy,
        };
        if let Some(started) = self.head_started {
            // A head that began is no longer idleness: it has its own deadline (the first
            // request's stays, if sooner).
            let head_due = started + limits.header_read_timeout;
            if self.served > 0 || head_due < at {
                (at, why) = (head_due, Close::HeaderReadTimeout);
            }
        }
        if now >= at {
            Due::Close(why)
        } else {
            Due::At(at)
        }
    }
}

/// A request in flight on a connection; the connection counts as idle again once all are dropped.
pub struct InFlight(Arc<Connection>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = self.0.activity();
        a.in_flight -= 1;
        let idle = a.in_flight == 0;
        let mut sooner = false;
        if idle {
            a.idle_since = Instant::now();
            let deadline = a.idle_since + self.0.idle_timeout;
            sooner = a.watched_until.is_some_and(|at| deadline < at);
        }
        drop(a);
        if sooner {
            self.0.changed.notify_one();
        }
        if idle {
            self.0.became_idle.became_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_address: Option<usize>) -> SlotLimits {
        SlotLimits {
            max_connections: max,
            max_per_address: per_address,
            first_request_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(60),
        }
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    fn admitted(a: Admission) -> Slot {
        match a {
            Admission::Admitted(s) => s,
            _ => panic!("not admitted"),
        }
    }

    /// A request that ends while a newcomer waits for a slot wakes it, however the two interleave
    /// (`Freed`): the newcomer counts itself before it looks at the connection, and the request's
    /// end reads the count after it marked the connection idle. Each round the end runs on another
    /// thread, released together with the newcomer's look.
    #[test]
    fn a_request_ending_while_a_newcomer_looks_always_wakes_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let slots = Slots::new(limits(1, None));
        let slot = admitted(slots.admit(ip(1)));
        let mut saw_busy = 0;
        for _ in 0..2000 {
            let (_, in_flight) = slot.connection.request_started();
            let start = Arc::new(std::sync::Barrier::new(2));
            let ends = std::thread::spawn({
                let start = Arc::clone(&start);
                move || {
                    start.wait();
                    drop(in_flight);
                }
            });
            start.wait();
            let freed = slots.freed();
            if slot.connection.activity().in_flight > 0 {
                saw_busy += 1;
                let woken = runtime
                    .block_on(async { tokio::time::timeout(Duration::from_secs(5), freed).await });
                assert!(
                    woken.is_ok(),
                    "a newcomer that saw the request was not woken by its end"
                );
            }
            ends.join().unwrap();
        }
        assert!(
            saw_busy > 0,
            "the newcomer never looked before the request ended"
        );
    }

    #[test]
    fn an_address_holds_at_most_its_share() {
        let slots = Slots::new(limits(10, Some(2)));
        let _a = admitted(slots.admit(ip(1)));
        let b = admitted(slots.admit(ip(1)));
        assert!(matches!(slots.admit(ip(1)), Admission::AddressFull));
        let _c = admitted(slots.admit(ip(2)));
        drop(b);
        let _d = admitted(slots.admit(ip(1)));
    }

    #[test]
    fn a_full_house_evicts_a_silent_connection_before_an_idle_one_and_never_a_busy_one() {
        let slots = Slots::new(limits(3, None));
        let busy = admitted(slots.admit(ip(1)));
        let (_, _in_flight) = busy.connection.request_started();
        let idle = admitted(slots.admit(ip(1)));
        drop(idle.connection.request_started());
        let silent = admitted(slots.admit(ip(1)));
        assert!(matches!(slots.admit(ip(2)), Admission::Full));
        assert_eq!(silent.connection.activity().close, Some(Close::Evicted));
        assert_eq!(idle.connection.activity().close, None);
        // While the evicted one is leaving, no second one is asked.
        assert!(matches!(slots.admit(ip(2)), Admission::Full));
        assert_eq!(idle.connection.activity().close, None);
        drop(silent);
        let new = admitted(slots.admit(ip(2)));
        drop(new.connection.request_started());
        // Both idle now: the one idle longer goes.
        assert!(matches!(slots.admit(ip(3)), Admission::Full));
        assert_eq!(idle.connection.activity().close, Some(Close::Evicted));
        assert_eq!(new.connection.activity().close, None);
        assert_eq!(busy.connection.activity().close, None);
    }

    /// A connection accepted at `t0` that has sent nothing yet.
    fn fresh(t0: Instant) -> Activity {
        Activity {
            in_flight: 0,
            served: 0,
            idle_since: t0,
            head_started: None,
            close: None,
            watched_until: None,
        }
    }

    #[test]
    fn the_first_request_has_its_own_deadline_then_idleness_counts_and_a_request_in_flight_never_is_idle()
     {
        let l = SlotLimits {
            first_request_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(30),
            ..limits(3, None)
        };
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut a = fresh(t0);
        assert_eq!(a.due(l, t0 + secs(1)), Due::At(t0 + secs(2)));
        assert_eq!(
            a.due(l, t0 + secs(2)),
            Due::Close(Close::FirstRequestTimeout)
        );
        a.served = 1;
        a.in_flight = 1;
        assert_eq!(a.due(l, t0 + secs(3600)), Due::Busy);
        a.in_flight = 0;
        a.idle_since = t0 + secs(10);
        assert_eq!(a.due(l, t0 + secs(39)), Due::At(t0 + secs(40)));
        assert_eq!(a.due(l, t0 + secs(40)), Due::Close(Close::IdleTimeout));
        a.close = Some(Close::Evicted);
        assert_eq!(a.due(l, t0), Due::Close(Close::Evicted));
    }

    #[test]
    fn a_head_that_began_has_its_own_deadline_and_a_silent_keep_alive_connection_stays_until_idle_timeout()
     {
        let l = SlotLimits {
            first_request_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(5),
            ..limits(3, None)
        };
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let mut a = fresh(t0);
        // The first request: its own deadline stays when it is sooner than the head's.
        a.head_started = Some(t0 + secs(1));
        assert_eq!(a.due(l, t0 + secs(2)), Due::At(t0 + secs(3)));
        assert_eq!(
            a.due(l, t0 + secs(3)),
            Due::Close(Close::FirstRequestTimeout)
        );
        // Served once and idle since 10 s: silence lasts until idle_timeout, well past the
        // header timeout (hyper's own header timer closed such a connection after 5 s).
        a.served = 1;
        a.head_started = None;
        a.idle_since = t0 + secs(10);
        assert_eq!(a.due(l, t0 + secs(36)), Due::At(t0 + secs(40)));
        // A head begins at 37 s: it must end by 42 s, past the idle deadline.
        a.head_started = Some(t0 + secs(37));
        assert_eq!(a.due(l, t0 + secs(40)), Due::At(t0 + secs(42)));
        assert_eq!(
            a.due(l, t0 + secs(42)),
            Due::Close(Close::HeaderReadTimeout)
        );
        // A head that begins early must end early.
        a.head_started = Some(t0 + secs(11));
        assert_eq!(
            a.due(l, t0 + secs(16)),
            Due::Close(Close::HeaderReadTimeout)
        );
    }

    #[test]
    fn bytes_begin_a_head_only_between_requests_and_a_request_ends_it() {
        let slots = Slots::new(limits(3, None));
        let slot = admitted(slots.admit(ip(1)));
        let c = &slot.connection;
        let (_, in_flight) = c.request_started();
        c.head_bytes_arrived(); // body bytes of the request in flight
        assert_eq!(c.activity().head_started, None);
        drop(in_flight);
        c.head_bytes_arrived();
        let began = c.activity().head_started.expect("a head began");
        c.head_bytes_arrived(); // more of the same head: it began when it began
        assert_eq!(c.activity().head_started, Some(began));
        drop(c.request_started());
        assert_eq!(c.activity().head_started, None);
    }
}
