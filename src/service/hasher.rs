//! Argon2id hashing of passwords and PINs, peppered, on a bounded pool off the async runtime.
//!
//! At most `concurrency` hashes run at once (each needs `m` KiB and one core for ~15 ms); at most
//! `queue` more requests wait for a slot. Beyond that the caller is told `Overloaded` at once, so a
//! flood turns into fast 503s instead of an ever longer queue and ever more memory.
//!
//! The hashes run on `concurrency` threads of their own (`otpd-hash`), which take jobs in order
//! from one queue, each with its own reused work area. A thread that finishes a hash takes the
//! next waiting one at once; with tokio's blocking pool the freed slot first woke the waiting
//! request, which then woke (or started) another blocking thread: two thread hand-offs per hash
//! while the core had nothing to do, and twice as many threads, each with `m` KiB of work area
//! (docs/benchmark.md).
//!
//! The pepper is Argon2's secret input; its id goes into the PHC string's `keyid` parameter. Every
//! pepper of the ring verifies the hashes made under its id; a hash made under an older one, or
//! with other parameters, or imported from another system (`imported_hash`), is `outdated` and is
//! re-hashed under the current pepper after the next successful check.

use super::hashing_settings::Argon2Settings;
use super::pepper::{Pepper, PepperRing};
pub use super::stored_hash::StoredHash;
use crate::metrics::Metrics;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, KeyId, ParamsBuilder, PasswordHasher, Version};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use subtle::ConstantTimeEq;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use zeroize::Zeroize;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("hashing queue is full")]
    Overloaded,
    #[error("stored hash unusable: {0}")]
    BadStoredHash(String),
    /// The hash names a pepper id that is not loaded: nothing can check it until it is.
    #[error("stored hash made under pepper id `{0}`, which is not loaded")]
    UnknownPepper(String),
    #[error("hashing failed: {0}")]
    Internal(String),
}

/// The outcome of checking a secret against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash uses other parameters than configured now: re-hash after a success.
    pub outdated: bool,
}

#[derive(Clone)]
pub struct Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    peppers: PepperRing,
    settings: Argon2Settings,
    /// The hashing threads' queue; they end when the last `Hasher` is gone.
    jobs: flume::Sender<Job>,
    /// Hashes being computed right now.
    running: AtomicUsize,
    admitted: Arc<Semaphore>,
    capacity: usize,
    metrics: Metrics,
}

/// How busy the pool is right now (for the metrics scrape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLoad {
    /// Admitted requests not computing a hash at this moment (waiting for a slot, or between
    /// their hashes).
    pub waiting: usize,
    pub running: usize,
}

const SALT_LEN: usize = 16;

/// A hash to compute, with its reply.
type Job = Box<dyn FnOnce() + Send>;

/// Starts the `concurrency` hashing threads on `jobs`. Each ends when the queue is closed and empty.
fn start_threads(concurrency: usize, jobs: &flume::Receiver<Job>) -> std::io::Result<()> {
    for _ in 0..concurrency {
        let jobs = jobs.clone();
        std::thread::Builder::new()
            .name("otpd-hash".into())
            .spawn(move || {
                for job in jobs.iter() {
                    job();
                }
            })?;
    }
    Ok(())
}

thread_local! {
    /// One Argon2 work area per hashing thread, reused across hashes: allocating m KiB afresh for
    /// every request multiplies resident memory under load.
    static WORK_AREA: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

impl Hasher {
    pub fn new(pepper: Pepper, settings: Argon2Settings, concurrency: usize, queue: usize) -> Self {
        Self::with_metrics(
            PepperRing::single(pepper),
            settings,
            concurrency,
            queue,
            Metrics::new(),
        )
    }

    /// A pool that reports its wait times and refusals to `metrics`.
    pub fn with_metrics(
        peppers: PepperRing,
        settings: Argon2Settings,
        concurrency: usize,
        queue: usize,
        metrics: Metrics,
    ) -> Self {
        let (jobs, waiting) = flume::unbounded();
        // Without its threads the service cannot check a password: as fatal as a failed start.
        start_threads(concurrency, &waiting).expect("cannot start the hashing threads");
        Self {
            inner: Arc::new(Inner {
                peppers,
                settings,
                jobs,
                running: AtomicUsize::new(0),
                admitted: Arc::new(Semaphore::new(concurrency + queue)),
                capacity: concurrency + queue,
                metrics,
            }),
        }
    }

    pub fn load(&self) -> HashLoad {
        let inner = &self.inner;
        let admitted = inner.capacity - inner.admitted.available_permits();
        let running = inner.running.load(Ordering::Relaxed);
        HashLoad {
            waiting: admitted.saturating_sub(running),
            running,
        }
    }

    /// A place in the hashing queue, or `Overloaded` at once. Callers that must not count an
    /// attempt they cannot check (the attempt limits) take it before counting.
    pub fn admit(&self) -> Result<HashPermit<'_>, HashError> {
        let admitted = Arc::clone(&self.inner.admitted)
            .try_acquire_owned()
            .map_err(|_| {
                self.inner.metrics.hash_rejected();
                HashError::Overloaded
            })?;
        Ok(HashPermit {
            hasher: self,
            admitted: Arc::new(admitted),
        })
    }

    /// Hashes a new secret into a PHC string.
    pub async fn hash(&self, secret: &str) -> Result<String, HashError> {
        self.admit()?.hash(secret).await
    }

    /// Checks `secret` against a stored PHC string in constant time.
    pub async fn verify(&self, secret: &str, phc: &str) -> Result<Verification, HashError> {
        self.admit()?.verify(secret, phc).await
    }

    /// Whether a stored hash can be checked at all (its pepper is loaded, its form is known),
    /// without hashing: asked before an attempt is counted, so a check that cannot happen is
    /// answered as unavailable and costs the user nothing.
    pub fn check_usable(&self, phc: &str) -> Result<(), HashError> {
        match StoredHash::parse(phc)? {
            StoredHash::Peppered { pepper_id, .. } => self
                .inner
                .peppers
                .get(&pepper_id)
                .map(|_| ())
                .ok_or(HashError::UnknownPepper(pepper_id)),
            StoredHash::Imported(_) => Ok(()),
        }
    }

    /// The ids of the loaded peppers, current first.
    pub fn pepper_ids(&self) -> Vec<String> {
        self.inner.peppers.all().map(|p| p.id.clone()).collect()
    }

    /// The Argon2id parameters of new hashes.
    pub fn settings(&self) -> Argon2Settings {
        self.inner.settings
    }

    async fn run<T, F>(&self, admitted: Arc<OwnedSemaphorePermit>, job: F) -> Result<T, HashError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, HashError> + Send + 'static,
    {
        let queued_at = Instant::now();
        let inner = Arc::clone(&self.inner);
        let (reply, answer) = oneshot::channel();
        // The admission moves into the job: if the request is dropped (client gone), the hash
        // keeps its place until its turn comes, so the bound holds; it is then skipped, as nobody
        // waits for it. A job that panics answers nothing, which reads as an internal error.
        let job: Job = Box::new(move || {
            if reply.is_closed() {
                drop(admitted);
                return;
            }
            inner.metrics.hash_wait(queued_at.elapsed());
            inner.running.fetch_add(1, Ordering::Relaxed);
            let result = catch_unwind(AssertUnwindSafe(|| job(&inner)));
            inner.running.fetch_sub(1, Ordering::Relaxed);
            drop(admitted);
            if let Ok(result) = result {
                let _ = reply.send(result);
            }
        });
        let failed = || HashError::Internal("hashing task failed".into());
        self.inner.jobs.send(job).map_err(|_| failed())?;
        answer.await.map_err(|_| failed())?
    }
}

/// An admitted place in the hashing queue; the hashes of one request run through it one after
/// another. Each running hash holds a share of it, so it is released only when both the request
/// and its last hash are done.
pub struct HashPermit<'a> {
    hasher: &'a Hasher,
    admitted: Arc<OwnedSemaphorePermit>,
}

impl HashPermit<'_> {
    pub async fn hash(&self, secret: &str) -> Result<String, HashError> {
        let secret = SecretString::from(secret);
        self.hasher
            .run(Arc::clone(&self.admitted), move |inner| {
                inner.hash(secret.expose_secret())
            })
            .await
    }

    /// `secret` is the value exactly as typed: an imported hash is checked against these bytes,
    /// as its source system did. (Any normalization otpd applies to its own hashes belongs in
    /// the peppered path, never before this call.)
    pub async fn verify(&self, secret: &str, phc: &str) -> Result<Verification, HashError> {
        let stored = StoredHash::parse(phc)?;
        let secret = SecretString::from(secret);
        let phc = phc.to_owned();
        self.hasher
            .run(Arc::clone(&self.admitted), move |inner| match stored {
                StoredHash::Peppered { pepper_id, .. } => {
                    inner.verify(secret.expose_secret(), &phc, &pepper_id)
                }
                StoredHash::Imported(imported) => Ok(Verification {
                    matches: imported.verify(secret.expose_secret().as_bytes()),
                    outdated: true,
                }),
            })
            .await
    }
}

impl Inner {
    fn context<'a>(&'a self, params: argon2::Params) -> Result<Argon2<'a>, HashError> {
        Argon2::new_with_secret(
            self.peppers.current().bytes(),
            Algorithm::Argon2id,
            Version::V0x13,
            params,
        )
        .map_err(|e| HashError::Internal(e.to_string()))
    }

    fn current_params(&self) -> Result<argon2::Params, HashError> {
        let keyid = KeyId::new(self.peppers.current().id.as_bytes())
            .map_err(|e| HashError::Internal(e.to_string()))?;
        ParamsBuilder::new()
            .m_cost(self.settings.m_kib)
            .t_cost(self.settings.t)
            .p_cost(self.settings.p)
            .keyid(keyid)
            .build()
            .map_err(|e| HashError::Internal(e.to_string()))
    }

    fn hash(&self, secret: &str) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        let ctx = self.context(self.current_params()?)?;
        let phc = ctx
            .hash_password_with_salt(secret.as_bytes(), &salt)
            .map_err(|e| HashError::Internal(e.to_string()))?;
        Ok(phc.to_string())
    }

    fn verify(&self, secret: &str, phc: &str, pepper_id: &str) -> Result<Verification, HashError> {
        let bad = |why: &str| HashError::BadStoredHash(why.to_owned());
        let parsed = PasswordHash::new(phc).map_err(|_| bad("not a PHC string"))?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(bad("not argon2id"));
        }
        let params = argon2::Params::try_from(&parsed).map_err(|_| bad("bad parameters"))?;
        let pepper = self
            .peppers
            .get(pepper_id)
            .ok_or_else(|| HashError::UnknownPepper(pepper_id.to_owned()))?;
        let salt = parsed.salt.as_ref().ok_or_else(|| bad("no salt"))?;
        let expected = parsed.hash.as_ref().ok_or_else(|| bad("no hash output"))?;
        let version = parsed
            .version
            .map(|v| Version::try_from(v).map_err(|_| bad("bad version")))
            .transpose()?
            .unwrap_or(Version::V0x13);
        let outdated = params.m_cost() != self.settings.m_kib
            || params.t_cost() != self.settings.t
            || params.p_cost() != self.settings.p
            || version != Version::V0x13
            || pepper.id != self.peppers.current().id;
        let blocks = params.block_count();
        let ctx = Argon2::new_with_secret(pepper.bytes(), Algorithm::Argon2id, version, params)
            .map_err(|e| HashError::Internal(e.to_string()))?;
        let mut out = vec![0u8; expected.len()];
        WORK_AREA
            .with_borrow_mut(|area| {
                if area.len() != blocks {
                    area.clear();
                    area.resize(blocks, Block::new());
                }
                ctx.hash_password_into_with_memory(
                    secret.as_bytes(),
                    salt.as_ref(),
                    &mut out,
                    &mut area[..],
                )
            })
            .map_err(|e| HashError::Internal(e.to_string()))?;
        let matches = bool::from(out.as_slice().ct_eq(expected.as_bytes()));
        out.zeroize();
        Ok(Verification { matches, outdated })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(settings: Argon2Settings) -> Hasher {
        let pepper = Pepper::new("t1".into(), vec![42; 32]).unwrap();
        Hasher::new(pepper, settings, 2, 2)
    }

    const CHEAP: Argon2Settings = Argon2Settings {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    #[tokio::test]
    async fn a_hash_verifies_its_own_secret_and_nothing_else() {
        let h = hasher(CHEAP);
        let phc = h.hash("correct horse").await.unwrap();
        assert!(
            phc.starts_with("$argon2id$v=19$m=64,t=1,p=1,keyid="),
            "{phc}"
        );
        assert!(h.verify("correct horse", &phc).await.unwrap().matches);
        assert!(!h.verify("correct horsf", &phc).await.unwrap().matches);
    }

    #[tokio::test]
    async fn the_pepper_is_part_of_the_hash() {
        let phc = hasher(CHEAP).hash("correct horse").await.unwrap();
        let other = Hasher::new(Pepper::new("t1".into(), vec![43; 32]).unwrap(), CHEAP, 1, 0);
        assert!(!other.verify("correct horse", &phc).await.unwrap().matches);
    }

    #[tokio::test]
    async fn changed_parameters_mark_a_hash_outdated() {
        let phc = hasher(CHEAP).hash("correct horse").await.unwrap();
        let stronger = hasher(Argon2Settings {
            m_kib: 128,
            ..CHEAP
        });
        let v = stronger.verify("correct horse", &phc).await.unwrap();
        assert!(v.matches && v.outdated);
    }

    #[tokio::test]
    async fn an_old_pepper_verifies_its_hashes_and_marks_them_outdated() {
        let p = |id: &str, b: u8| Pepper::new(id.into(), vec![b; 32]).unwrap();
        let old = Hasher::new(p("p1", 1), CHEAP, 1, 1);
        let phc = old.hash("correct horse").await.unwrap();
        let ring = PepperRing::new(p("p2", 2), vec![p("p1", 1)]).unwrap();
        let rotated = Hasher::with_metrics(ring, CHEAP, 1, 1, Metrics::new());
        let v = rotated.verify("correct horse", &phc).await.unwrap();
        assert!(v.matches && v.outdated);
        assert!(!rotated.verify("wrong horse", &phc).await.unwrap().matches);
        let new = rotated.hash("correct horse").await.unwrap();
        assert!(new.contains("keyid="), "{new}");
        assert!(
            !rotated
                .verify("correct horse", &new)
                .await
                .unwrap()
                .outdated
        );
        // Without p1 loaded the hash cannot be checked: a specific error, before any hashing.
        let without = Hasher::new(p("p2", 2), CHEAP, 1, 1);
        assert!(
            matches!(without.check_usable(&phc), Err(HashError::UnknownPepper(id)) if id == "p1")
        );
        assert!(matches!(
            without.verify("correct horse", &phc).await,
            Err(HashError::UnknownPepper(_))
        ));
    }

    #[tokio::test]
    async fn an_imported_hash_is_checked_against_the_secret_as_typed() {
        // "ﬁ" (U+FB01) is what NFKC would turn into "fi": the source hashed the ligature.
        let typed = "\u{FB01}le secret";
        let mcf = bcrypt::hash_with_salt(typed, 4, [3u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoB);
        let h = hasher(CHEAP);
        h.check_usable(&mcf).unwrap();
        let v = h.verify(typed, &mcf).await.unwrap();
        assert!(v.matches && v.outdated);
        assert!(!h.verify("file secret", &mcf).await.unwrap().matches);
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let h = Hasher::new(
            Pepper::new("t1".into(), vec![1; 32]).unwrap(),
            Argon2Settings {
                m_kib: 8192,
                t: 8,
                p: 1,
            },
            1,
            0,
        );
        let phc = hasher(CHEAP).hash("x").await.unwrap();
        let busy = {
            let h = h.clone();
            tokio::spawn(async move { h.hash("y").await })
        };
        // Wait until the busy hash holds the only admission (a fixed sleep raced on a loaded machine).
        while h.inner.admitted.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            h.verify("x", &phc).await,
            Err(HashError::Overloaded)
        ));
        busy.await.unwrap().unwrap();
    }

    /// Runs `job` on the pool through an admission of its own, as a hash would.
    async fn on_pool<T: Send + 'static>(
        h: &Hasher,
        job: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = h.admit()?;
        h.run(Arc::clone(&permit.admitted), move |_| Ok(job()))
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_run_on_exactly_concurrency_threads_of_their_own() {
        let h = Hasher::new(Pepper::new("t1".into(), vec![1; 32]).unwrap(), CHEAP, 2, 30);
        let jobs: Vec<_> = (0..30)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move {
                    on_pool(&h, || {
                        std::thread::sleep(std::time::Duration::from_millis(2));
                        let me = std::thread::current();
                        (me.id(), me.name().map(str::to_owned))
                    })
                    .await
                })
            })
            .collect();
        let mut threads = std::collections::HashSet::new();
        for job in jobs {
            let (id, name) = job.await.unwrap().unwrap();
            assert_eq!(name.as_deref(), Some("otpd-hash"));
            threads.insert(id);
        }
        // tokio's blocking pool, which ran them before, used a new thread whenever a slot freed
        // before its thread was idle again: 4 threads for 2 slots under load.
        assert_eq!(threads.len(), 2, "{threads:?}");
        assert_eq!(
            h.load(),
            HashLoad {
                waiting: 0,
                running: 0
            }
        );
    }

    #[tokio::test]
    async fn a_hash_whose_request_is_gone_keeps_its_place_and_is_skipped() {
        let h = Hasher::new(Pepper::new("t1".into(), vec![1; 32]).unwrap(), CHEAP, 1, 2);
        // The only thread waits on a gate, so the next job queues behind it.
        let (open, gate) = std::sync::mpsc::channel::<()>();
        let busy = {
            let h = h.clone();
            tokio::spawn(async move { on_pool(&h, move || gate.recv().unwrap()).await })
        };
        while h.load().running == 0 {
            tokio::task::yield_now().await;
        }
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let queued = {
            let (h, ran) = (h.clone(), Arc::clone(&ran));
            tokio::spawn(
                async move { on_pool(&h, move || ran.store(true, Ordering::SeqCst)).await },
            )
        };
        while h.inner.admitted.available_permits() > 1 {
            tokio::task::yield_now().await;
        }
        queued.abort();
        assert!(queued.await.unwrap_err().is_cancelled());
        // Its admission is held until its turn: the queue has one place left, not two.
        assert_eq!(h.inner.admitted.available_permits(), 1);
        open.send(()).unwrap();
        busy.await.unwrap().unwrap();
        // One queue, in order: once a later job has run, the dropped one had its turn.
        on_pool(&h, || ()).await.unwrap();
        assert!(
            !ran.load(Ordering::SeqCst),
            "a hash nobody waits for was computed"
        );
        assert_eq!(h.inner.admitted.available_permits(), 3);
    }

    #[tokio::test]
    async fn a_panicking_hash_is_an_internal_error_and_its_thread_goes_on() {
        let h = Hasher::new(Pepper::new("t1".into(), vec![1; 32]).unwrap(), CHEAP, 1, 0);
        let failed = on_pool(&h, || panic!("a bug in a hash")).await;
        assert!(matches!(failed, Err(HashError::Internal(_))), "{failed:?}");
        let phc = h.hash("x").await.unwrap();
        assert!(h.verify("x", &phc).await.unwrap().matches);
        assert_eq!(h.inner.admitted.available_permits(), 1);
    }
}
