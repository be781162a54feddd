//! Decoding pictures is the desk's heaviest work: proving a label photo is a real
//! picture, and finding the QR code in a screenshot. It runs off the async workers, on
//! a few threads of its own (one per share below) rather than tokio's blocking pool:
//! the allocator keeps a freed decode buffer for the thread that freed it, so decodes
//! spread over dozens of pool threads left hundreds of megabytes resident after a burst
//! of large photos (docs/BENCHMARKS.md, part 6). It is bounded three ways:
//!
//! - photo proofs: one at a time per core;
//! - QR reading (ten times the work of a photo proof): half the cores, at least one, and
//!   on its own permits, so a burst of screenshots leaves cores to the ordinary intake
//!   instead of making every photo check queue behind them;
//! - memory: each job reserves what its picture's header says decoding will take, from
//!   `picture_memory_mb`; a picture larger than the whole budget waits to run alone;
//! - per client address (as `trusted_proxies` resolves it, the key `uploads_per_address`
//!   uses): at most [`JOBS_PER_ADDRESS`] jobs at once, waiting or running, reserving at
//!   most half the memory budget together. The queue is first come, first served, so
//!   without this a few addresses sending large pictures filled it, and a customer's
//!   photo waited behind all of them (seven photos from two addresses made one wait
//!   past the queue's limit). Now an address's further pictures wait in a line of its
//!   own, outside the shared queue: a customer waits behind at most two jobs of each
//!   other address, each bounded by the decoding caps of `intake::photo` and by
//!   [`PICTURE_WORK_TIMEOUT`]. A picture needing more than half the budget takes its
//!   address's whole half (it is that address's only job) and still runs alone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;

/// Picture jobs one client address may have at once, waiting for shares or running. Two:
/// a submission has one at a time (its photo, then its QR picture), so two customers
/// behind one office's address both proceed, and on two cores one address can still
/// keep both busy when nobody else is waiting.
pub const JOBS_PER_ADDRESS: u32 = 2;

/// The longest one picture may take to decode before the request gives up on it.
pub const PICTURE_WORK_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest a picture may wait for its share; past it the desk is too busy, which is
/// not the picture's fault.
const PICTURE_QUEUE_TIMEOUT: Duration = Duration::from_secs(120);

const MIB: u64 = 1024 * 1024;

/// Why picture work produced nothing. `Failed` and `TooSlow` are the picture's fault as
/// far as the customer is concerned (a crafted file that crashes or stalls a decoder);
/// `Busy` is the desk's, and the customer is asked to try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PictureWorkError {
    #[error(
        "the picture could not be read (it may be damaged); send it again as a plain JPEG or PNG"
    )]
    Failed,
    #[error("the picture took too long to read; send a smaller JPEG or PNG")]
    TooSlow,
    #[error("the desk is busy reading other pictures")]
    Busy,
}

/// Which kind of picture work, as each has its own share of the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PictureJob {
    PhotoProof,
    QrReading,
}

type Job = Box<dyn FnOnce() + Send>;

pub struct PictureWork {
    /// To the decoding threads; they end when this is dropped.
    jobs: std::sync::mpsc::Sender<Job>,
    photo_proofs: Arc<Semaphore>,
    qr_reading: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    memory_mib: u32,
    /// Each client address's share, kept while it has jobs.
    addresses: Arc<Mutex<HashMap<String, Arc<AddressShare>>>>,
    work_timeout: Duration,
    queue_timeout: Duration,
}

/// What one client address may hold: [`JOBS_PER_ADDRESS`] jobs, half the memory budget.
struct AddressShare {
    jobs: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    memory_mib: u32,
}

/// An address's share held by one job; the last one out removes the address's entry.
struct AddressLease {
    addresses: Arc<Mutex<HashMap<String, Arc<AddressShare>>>>,
    address: String,
    share: Arc<AddressShare>,
}

impl Drop for AddressLease {
    fn drop(&mut self) {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // The map's reference and this one: no other job of the address holds it.
        if Arc::strong_count(&self.share) == 2 {
            addresses.remove(&self.address);
        }
    }
}

impl PictureWork {
    /// Shares for `cores` cores and `memory_mib` MiB of decoding memory.
    pub fn new(cores: usize, memory_mib: u64) -> Self {
        let cores = cores.max(1);
        let memory_mib = u32::try_from(memory_mib).unwrap_or(u32::MAX).max(1);
        let qr_shares = (cores / 2).max(1);
        Self {
            // A job is handed over only once it holds a share, so with a thread per share
            // it never waits for a thread.
            jobs: decoding_threads(cores + qr_shares),
            photo_proofs: Arc::new(Semaphore::new(cores)),
            qr_reading: Arc::new(Semaphore::new(qr_shares)),
            memory: Arc::new(Semaphore::new(memory_mib as usize)),
            memory_mib,
            addresses: Arc::default(),
            work_timeout: PICTURE_WORK_TIMEOUT,
            queue_timeout: PICTURE_QUEUE_TIMEOUT,
        }
    }

    /// Shares for the cores this process may use.
    pub fn for_this_machine(memory_mib: u64) -> Self {
        Self::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_mib,
        )
    }

    /// The share of `address`, made when it has no job yet.
    fn lease(&self, address: &str) -> AddressLease {
        let mut addresses = self
            .addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let share = addresses
            .entry(address.to_owned())
            .or_insert_with(|| {
                let memory_mib = (self.memory_mib / 2).max(1);
                Arc::new(AddressShare {
                    jobs: Arc::new(Semaphore::new(JOBS_PER_ADDRESS as usize)),
                    memory: Arc::new(Semaphore::new(memory_mib as usize)),
                    memory_mib,
                })
            })
            .clone();
        AddressLease {
            addresses: self.addresses.clone(),
            address: address.to_owned(),
            share,
        }
    }

    /// Runs `work` for a client at `address`, which needs up to `memory_bytes` while it
    /// decodes, within the address's share, its kind's share of the cores and the memory
    /// budget.
    pub async fn run<T: Send + 'static>(
        &self,
        job: PictureJob,
        address: &str,
        memory_bytes: u64,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PictureWorkError> {
        let cores = match job {
            PictureJob::PhotoProof => &self.photo_proofs,
            PictureJob::QrReading => &self.qr_reading,
        };
        // Label photos (read by the evidence worker, after intake) reserve at most half the
        // budget: a crafted photo that keeps a decoder busy long after its caller gave up
        // must leave room for the QR pictures intake reads while the customer waits.
        let ceiling = match job {
            PictureJob::PhotoProof => (self.memory_mib / 2).max(1),
            PictureJob::QrReading => self.memory_mib,
        };
        let mib = u32::try_from(memory_bytes.div_ceil(MIB))
            .unwrap_or(u32::MAX)
            .clamp(1, ceiling);
        let lease = self.lease(address);
        let shares = async {
            // The semaphores are never closed, so acquiring cannot fail. Always in this
            // order, the address's own before the shared ones, so two jobs never hold
            // one each and wait for each other; and a job waiting behind its address's
            // earlier ones holds no place in the shared queue.
            let share = &lease.share;
            let own_job = share.jobs.clone().acquire_owned().await.ok();
            let own_memory = share
                .memory
                .clone()
                .acquire_many_owned(mib.min(share.memory_mib))
                .await
                .ok();
            let core = cores.clone().acquire_owned().await.ok();
            let memory = self.memory.clone().acquire_many_owned(mib).await.ok();
            (own_job, own_memory, core, memory)
        };
        let permits = tokio::time::timeout(self.queue_timeout, shares)
            .await
            .map_err(|_| PictureWorkError::Busy)?;
        // Dropped after the permits (fields drop in order), so the address's entry goes
        // only once its shares are back.
        let permits = (permits, lease);
        // The permits travel with the work: a decode that outlives its caller (after a
        // timeout) still counts against the bounds until it really ends.
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let result = work();
            // Given back before the caller hears the result, so a caller that goes on to
            // another picture finds the budget as this job left it.
            drop(permits);
            let _ = done.send(result);
        });
        self.jobs.send(job).map_err(|_| PictureWorkError::Failed)?;
        match tokio::time::timeout(self.work_timeout, result).await {
            Ok(Ok(done)) => Ok(done),
            // The work panicked: its sender was dropped unsent.
            Ok(Err(_)) => Err(PictureWorkError::Failed),
            Err(_) => Err(PictureWorkError::TooSlow),
        }
    }
}

/// Starts `count` threads that run jobs until the returned sender is dropped. A job that
/// panics (a decoder bug met by a crafted file) ends, not its thread.
fn decoding_threads(count: usize) -> std::sync::mpsc::Sender<Job> {
    let (jobs, queue) = std::sync::mpsc::channel::<Job>();
    let queue = Arc::new(std::sync::Mutex::new(queue));
    for _ in 0..count {
        let queue = queue.clone();
        let started = std::thread::Builder::new()
            .name("picture-work".to_owned())
            .spawn(move || {
                loop {
                    let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = next else { return };
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                }
            });
        if let Err(error) = started {
            // Fewer threads only means slower picture work, never lost work.
            tracing::error!(%error, "cannot start a picture-work thread");
        }
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "192.0.2.1";
    const B: &str = "198.51.100.2";
    const C: &str = "203.0.113.3";

    /// A job of `address` that holds its shares until the returned sender is used.
    fn held(
        work: &Arc<PictureWork>,
        address: &'static str,
        memory: u64,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), PictureWorkError>>,
    ) {
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let work = work.clone();
        let job = tokio::spawn(async move {
            work.run(PictureJob::PhotoProof, address, memory, move || {
                let _ = wait.recv();
            })
            .await
        });
        (release, job)
    }

    /// Lets spawned jobs take what they can.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn an_address_waits_behind_its_own_jobs_and_others_do_not() {
        let work = Arc::new(PictureWork::new(4, 64));
        let (release_first, first) = held(&work, A, MIB);
        let (release_second, second) = held(&work, A, MIB);
        settle().await;
        // A third picture of the same address waits for one of its own...
        let third = {
            let work = work.clone();
            tokio::spawn(async move { work.run(PictureJob::PhotoProof, A, MIB, || 3).await })
        };
        settle().await;
        assert!(!third.is_finished());
        // ...without taking a core: two of four are still free, and another address
        // is served at once.
        assert_eq!(work.photo_proofs.available_permits(), 2);
        assert_eq!(work.run(PictureJob::PhotoProof, B, MIB, || 4).await, Ok(4));
        release_first.send(()).expect("the first job waits");
        assert_eq!(third.await.ok(), Some(Ok(3)));
        release_second.send(()).expect("the second job waits");
        assert_eq!(first.await.ok(), Some(Ok(())));
        assert_eq!(second.await.ok(), Some(Ok(())));
        // Nothing is kept for addresses with no picture work.
        assert!(work.addresses.lock().expect("not poisoned").is_empty());
    }

    #[tokio::test]
    async fn an_address_holds_at_most_half_the_memory() {
        let work = Arc::new(PictureWork::new(4, 16));
        let (release, holding) = held(&work, A, 6 * MIB);
        settle().await;
        // 6 of A's 8 MiB are taken: another 6 MiB picture of A waits, though the budget
        // has 10 MiB free...
        let more = {
            let work = work.clone();
            tokio::spawn(async move { work.run(PictureJob::PhotoProof, A, 6 * MIB, || "A").await })
        };
        settle().await;
        assert!(!more.is_finished());
        assert_eq!(work.memory.available_permits(), 10);
        // ...which another address's picture gets at once.
        assert_eq!(
            work.run(PictureJob::PhotoProof, B, 6 * MIB, || "B").await,
            Ok("B")
        );
        release.send(()).expect("the first job waits");
        assert_eq!(more.await.ok(), Some(Ok("A")));
        assert_eq!(holding.await.ok(), Some(Ok(())));
        assert_eq!(work.memory.available_permits(), 16);
    }

    #[tokio::test]
    async fn qr_reading_never_takes_the_cores_photo_proofs_need() {
        let work = Arc::new(PictureWork::new(2, 64));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let wait = Arc::new(std::sync::Mutex::new(wait));
        // One QR job holds its only share.
        let holding = {
            let work = work.clone();
            let wait = wait.clone();
            tokio::spawn(async move {
                work.run(PictureJob::QrReading, A, MIB, move || {
                    let _ = wait.lock().map(|w| w.recv());
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(work.qr_reading.available_permits(), 0);
        // Both photo proofs still run at once while it does.
        let (a, b) = tokio::join!(
            work.run(PictureJob::PhotoProof, B, MIB, || 1),
            work.run(PictureJob::PhotoProof, C, MIB, || 2)
        );
        assert_eq!((a, b), (Ok(1), Ok(2)));
        release.send(()).expect("the QR job waits");
        assert_eq!(holding.await.ok(), Some(Ok(())));
    }

    #[tokio::test]
    async fn a_job_waits_for_memory_and_a_huge_one_runs_alone() {
        let work = Arc::new(PictureWork::new(4, 16));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let holding = {
            let work = work.clone();
            tokio::spawn(async move {
                work.run(PictureJob::QrReading, A, 10 * MIB, move || {
                    let _ = wait.recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(work.memory.available_permits(), 6);
        // A job bigger than the whole budget needs all of it, so it waits...
        let huge = {
            let work = work.clone();
            tokio::spawn(
                async move { work.run(PictureJob::QrReading, B, 1 << 40, || "huge").await },
            )
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!huge.is_finished());
        // ...until the first job ends, and then runs.
        release.send(()).expect("the first job waits");
        assert_eq!(huge.await.ok(), Some(Ok("huge")));
        assert_eq!(holding.await.ok(), Some(Ok(())));
        assert_eq!(work.memory.available_permits(), 16);
    }

    #[tokio::test]
    async fn a_label_photo_leaves_half_the_memory_to_qr_pictures() {
        let work = Arc::new(PictureWork::new(4, 16));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        // A label photo that keeps its decoder busy, however much it asks for...
        let holding = {
            let work = work.clone();
            tokio::spawn(async move {
                work.run(PictureJob::PhotoProof, A, 1 << 40, move || {
                    let _ = wait.recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(work.memory.available_permits(), 8);
        // ...leaves a QR picture of half the budget room to run while the customer waits.
        let qr = work.run(PictureJob::QrReading, B, 8 * MIB, || "read").await;
        assert_eq!(qr, Ok("read"));
        release.send(()).expect("the photo waits");
        assert_eq!(holding.await.ok(), Some(Ok(())));
    }

    #[tokio::test]
    async fn waiting_too_long_is_the_desk_being_busy_not_a_bad_picture() {
        let work = Arc::new(PictureWork {
            work_timeout: Duration::from_millis(100),
            queue_timeout: Duration::from_millis(300),
            ..PictureWork::new(1, 16)
        });
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let holding = {
            let work = work.clone();
            tokio::spawn(async move {
                work.run(PictureJob::PhotoProof, A, MIB, move || {
                    let _ = wait.recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The stuck decode is too slow for its own request, and still holds the core...
        let waited = work.run(PictureJob::PhotoProof, B, MIB, || 1).await;
        assert_eq!(holding.await.ok(), Some(Err(PictureWorkError::TooSlow)));
        // ...so the next picture, which waited its limit without starting, is told so.
        assert_eq!(waited, Err(PictureWorkError::Busy));
        release.send(()).expect("the stuck decode ends");
    }

    #[tokio::test]
    async fn a_panicking_decoder_is_a_failed_picture_and_frees_its_share() {
        let work = PictureWork::new(1, 16);
        let failed = work
            .run(PictureJob::PhotoProof, A, MIB, || -> u8 {
                panic!("decoder bug")
            })
            .await;
        assert_eq!(failed, Err(PictureWorkError::Failed));
        assert_eq!(work.run(PictureJob::PhotoProof, A, MIB, || 7).await, Ok(7));
    }
}
