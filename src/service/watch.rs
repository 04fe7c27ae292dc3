//! Long polls on "is this credential set yet?": woken at once by a change made in this process,
//! and rechecking the database at least every `RECHECK`, so a change made by another replica (or
//! by an operator command) also ends the wait.

use super::{ServiceError, Services};
use crate::domain::{Factor, Subject};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Upper bound on how stale a long poll's view can get when the change happened elsewhere.
pub const RECHECK: Duration = Duration::from_secs(1);

/// One `Notify` per user that has a waiter, removed with the last waiter.
#[derive(Default)]
pub struct CredentialWatch {
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
}

struct Subscription<'a> {
    watch: &'a CredentialWatch,
    key: String,
    notify: Arc<Notify>,
}

impl CredentialWatch {
    fn subscribe(&self, sub: &Subject) -> Subscription<'_> {
        let mut map = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        let notify = Arc::clone(map.entry(sub.as_str().to_owned()).or_default());
        Subscription {
            watch: self,
            key: sub.as_str().to_owned(),
            notify,
        }
    }

    /// Wakes every waiter of `sub` in this process.
    pub fn changed(&self, sub: &Subject) {
        let map = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(notify) = map.get(sub.as_str()) {
            notify.notify_waiters();
        }
    }
}

impl Drop for Subscription<'_> {
    fn drop(&mut self) {
        let mut map = self.watch.waiters.lock().unwrap_or_else(|p| p.into_inner());
        // Two references: the map's and ours. Then we are the last waiter of this user.
        if Arc::strong_count(&self.notify) == 2 {
            map.remove(&self.key);
        }
    }
}

impl Services {
    /// Whether `factor` is set for `sub`; with `timeout`, waits up to that long for it to be set.
    pub async fn wait_for_credential(
        &self,
        sub: &Subject,
        factor: Factor,
        timeout: Option<Duration>,
    ) -> Result<bool, ServiceError> {
        let deadline = Instant::now() + timeout.unwrap_or_default();
        let subscription = self.watch.subscribe(sub);
        loop {
            // Registered before the database is read, so a change committed in between still wakes us.
            let notified = subscription.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.store.credentials(sub).await?.hash(factor).is_some() {
                return Ok(true);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            let nap = (deadline - now).min(RECHECK);
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }
}
