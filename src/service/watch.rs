//! Long polls on "is this credential set yet?": woken at once by a change made in this process,
//! and rechecking the database every `RECHECK`, so a change made by another replica (or by an
//! operator command) also ends the wait.
//!
//! A long poll holds a connection for up to a minute, so waiters are capped per user and in total
//! (`LongPollLimits`); beyond a cap the request is answered at once with the current state, which
//! the API allows (the client asks again). The waiters of one user share one database re-check
//! per interval: whichever wakes first reads, the others take its answer.

use super::account::FactorsSet;
use super::{ServiceError, Services};
use crate::domain::{Factor, Subject};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Upper bound on how stale a long poll's view can get when the change happened elsewhere.
pub const RECHECK: Duration = Duration::from_secs(1);

/// How many long polls may wait at once (`long_poll_max_per_user`, `long_poll_max_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPollLimits {
    pub per_user: usize,
    pub total: usize,
}

impl Default for LongPollLimits {
    fn default() -> Self {
        Self {
            per_user: 4,
            total: 256,
        }
    }
}

/// The waiters of this process, per user.
#[derive(Default)]
pub struct CredentialWatch {
    limits: LongPollLimits,
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    users: HashMap<String, Waiters>,
    total: usize,
}

struct Waiters {
    count: usize,
    user: Arc<UserWatch>,
}

/// What the waiters of one user share.
#[derive(Default)]
struct UserWatch {
    /// Woken by a change in this process.
    notify: Notify,
    /// Bumped by every change in this process: a re-check read before it is stale.
    generation: AtomicU64,
    /// The latest shared re-check; the lock is held while one waiter reads for all.
    latest: tokio::sync::Mutex<Option<Snapshot>>,
}

#[derive(Clone, Copy)]
struct Snapshot {
    /// When the read began: anything committed before it is in `set`.
    started: Instant,
    generation: u64,
    set: FactorsSet,
}

/// A long poll was not admitted: it is answered with the current state at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cap {
    User,
    Total,
}

struct Subscription<'a> {
    watch: &'a CredentialWatch,
    key: String,
    user: Arc<UserWatch>,
}

impl CredentialWatch {
    pub fn new(limits: LongPollLimits) -> Self {
        Self {
            limits,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, WatchState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn subscribe(&self, sub: &Subject) -> Result<Subscription<'_>, Cap> {
        let mut state = self.state();
        if state.total >= self.limits.total {
            return Err(Cap::Total);
        }
        let waiters = state
            .users
            .entry(sub.as_str().to_owned())
            .or_insert_with(|| Waiters {
                count: 0,
                user: Arc::default(),
            });
        if waiters.count >= self.limits.per_user {
            return Err(Cap::User);
        }
        waiters.count += 1;
        let user = Arc::clone(&waiters.user);
        state.total += 1;
        Ok(Subscription {
            watch: self,
            key: sub.as_str().to_owned(),
            user,
        })
    }

    /// Wakes every waiter of `sub` in this process.
    pub fn changed(&self, sub: &Subject) {
        let state = self.state();
        if let Some(waiters) = state.users.get(sub.as_str()) {
            waiters.user.generation.fetch_add(1, Ordering::SeqCst);
            waiters.user.notify.notify_waiters();
        }
    }

    /// Long polls waiting now (all users).
    pub fn waiting(&self) -> usize {
        self.state().total
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut state = self.watch.state();
        state.total -= 1;
        if let Some(waiters) = state.users.get_mut(&self.key) {
            waiters.count -= 1;
            if waiters.count == 0 {
                state.users.remove(&self.key);
            }
        }
    }
}

impl Services {
    /// Whether `factor` is set for `sub`; with `timeout`, waits up to that long for it to be set.
    /// Beyond the waiter caps the answer is the current state, without waiting.
    pub async fn wait_for_credential(
        &self,
        sub: &Subject,
        factor: Factor,
        timeout: Option<Duration>,
    ) -> Result<bool, ServiceError> {
        let Some(timeout) = timeout else {
            return Ok(self.store.credentials(sub).await?.hash(factor).is_some());
        };
        let deadline = Instant::now() + timeout;
        let subscription = match self.watch.subscribe(sub) {
            Ok(s) => s,
            Err(cap) => {
                self.metrics.long_poll_cut_short(match cap {
                    Cap::User => "user",
                    Cap::Total => "total",
                });
                return Ok(self.store.credentials(sub).await?.hash(factor).is_some());
            }
        };
        let user = &subscription.user;
        // The request's own first look is its own read: it must see everything committed before
        // it arrived, not a neighbour's older re-check.
        let mut seen = {
            let notified = user.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let generation = user.generation.load(Ordering::SeqCst);
            let started = Instant::now();
            let stored = self.store.credentials(sub).await?;
            let snapshot = Snapshot {
                started,
                generation,
                set: FactorsSet::of(&stored),
            };
            if snapshot.set.has(factor) {
                return Ok(true);
            }
            self.nap(&mut notified, snapshot.started, deadline).await;
            snapshot
        };
        loop {
            let notified = user.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let snapshot = self.shared_recheck(sub, user, seen).await?;
            if snapshot.set.has(factor) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            self.nap(&mut notified, snapshot.started, deadline).await;
            seen = snapshot;
        }
    }

    /// Waits until the next re-check is due (`RECHECK` after the read we last saw, so the waiters
    /// of one user wake together), the deadline, or a change in this process.
    async fn nap(
        &self,
        notified: &mut std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
        last_read: Instant,
        deadline: Instant,
    ) {
        let until = (last_read + RECHECK).min(deadline);
        tokio::select! {
            () = notified.as_mut() => {}
            () = tokio::time::sleep_until(until) => {}
        }
    }

    /// A read newer than `last` and not older than the latest local change: another waiter's if
    /// one was made meanwhile, else our own (shared with the others).
    async fn shared_recheck(
        &self,
        sub: &Subject,
        user: &UserWatch,
        last: Snapshot,
    ) -> Result<Snapshot, ServiceError> {
        let mut latest = user.latest.lock().await;
        let generation = user.generation.load(Ordering::SeqCst);
        if let Some(s) = *latest
            && s.started > last.started
            && s.generation == generation
        {
            return Ok(s);
        }
        let started = Instant::now();
        self.metrics.long_poll_recheck();
        let stored = self.store.credentials(sub).await?;
        let snapshot = Snapshot {
            started,
            generation,
            set: FactorsSet::of(&stored),
        };
        *latest = Some(snapshot);
        Ok(snapshot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(s: &str) -> Subject {
        Subject::parse(s).unwrap()
    }

    #[test]
    fn the_caps_hold_per_user_and_in_total_and_free_up_on_drop() {
        let watch = CredentialWatch::new(LongPollLimits {
            per_user: 2,
            total: 3,
        });
        let a1 = watch.subscribe(&subject("a")).unwrap();
        let _a2 = watch.subscribe(&subject("a")).unwrap();
        assert_eq!(watch.subscribe(&subject("a")).err(), Some(Cap::User));
        let _b1 = watch.subscribe(&subject("b")).unwrap();
        assert_eq!(watch.subscribe(&subject("c")).err(), Some(Cap::Total));
        drop(a1);
        assert_eq!(watch.waiting(), 2);
        let _c1 = watch.subscribe(&subject("c")).unwrap();
        drop(_a2);
        assert!(!watch.state().users.contains_key("a"));
    }
}
