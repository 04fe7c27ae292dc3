//! Group commit of OTP redemptions on SQLite: one writer task runs every redemption that is
//! waiting in ONE transaction and answers each only after that transaction's COMMIT (and fsync)
//! returned.
//!
//! SQLite with `synchronous=FULL` pays one fsync per commit, and sqlx's driver a channel round trip
//! per statement: one transaction per redemption tops out at a few thousand a second. Redemptions
//! that arrive while a batch is being written wait for the next one, so under load a batch holds as
//! many as arrived during one commit and the fsync is shared. Each redemption runs in the batch
//! exactly as it would alone (statements in arrival order, each seeing the ones before), so every
//! guarantee of `redeem_counted` holds; a failing statement rolls the whole batch back and each of
//! its callers gets the error, so nothing is answered that is not on disk.

use super::{CountedRedemption, Millis, Redemption, StoreError};
use crate::domain::{LockPolicy, Subject};
use std::future::Future;
use tokio::sync::{mpsc, oneshot};

/// Redemptions written in one transaction at most: bounds how long one commit holds the lock.
pub(super) const MAX_BATCH: usize = 64;

/// One redemption with no follow-up: who, what may be consumed, the OTP policy, which of the
/// store's calls it is, and now.
pub(super) struct Job {
    pub sub: Subject,
    pub candidates: Redemption,
    pub policy: LockPolicy,
    pub call: Call,
    pub now: Millis,
}

/// Which store call a job answers.
#[derive(Clone, Copy)]
pub(super) enum Call {
    /// `redeem_counted` (`devices_checked`: device codes were among the candidates): always an
    /// outcome.
    Counted { devices_checked: bool },
    /// `redeem_counted_in_one_call`: `None` when `devices` asks for device TOTPs, the user has
    /// some and no OTP was valid (nothing written; the caller takes the full path).
    OneCall { devices: bool },
}

pub(super) struct Queued {
    pub job: Job,
    reply: oneshot::Sender<Result<Option<CountedRedemption>, StoreError>>,
}

/// The handle requests use; the writer task ends when it is dropped.
pub(super) struct GroupCommit {
    jobs: mpsc::Sender<Queued>,
}

impl GroupCommit {
    /// Starts the writer task. `write_batch` runs the jobs in one transaction and returns their
    /// outcomes in order, or the error that rolled the transaction back.
    pub fn start<F, Fut>(write_batch: F) -> Self
    where
        F: Fn(Vec<Job>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Option<CountedRedemption>>, StoreError>> + Send,
    {
        let (jobs, mut queue) = mpsc::channel::<Queued>(4 * MAX_BATCH);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
                let (jobs, replies): (Vec<Job>, Vec<_>) =
                    batch.drain(..).map(|q| (q.job, q.reply)).unzip();
                match write_batch(jobs).await {
                    Ok(outcomes) => {
                        for (reply, outcome) in replies.into_iter().zip(outcomes) {
                            // A caller that gave up still had its redemption committed, as if
                            // the answer had been lost on the way.
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, redemptions = replies.len(), "a group commit of redemptions was rolled back");
                        for reply in replies {
                            let _ = reply.send(Err(e.duplicate()));
                        }
                    }
                }
            }
        });
        Self { jobs }
    }

    /// Queues one redemption and waits until the transaction that holds it has committed.
    pub async fn redeem(
        &self,
        sub: &Subject,
        candidates: &Redemption,
        policy: &LockPolicy,
        call: Call,
        now: Millis,
    ) -> Result<Option<CountedRedemption>, StoreError> {
        let job = Job {
            sub: sub.clone(),
            candidates: candidates.clone(),
            policy: *policy,
            call,
            now,
        };
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Queued { job, reply })
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable(sqlx::Error::WorkerCrashed))?
    }
}
