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
//!   `picture_memory_mb`; a picture larger than the whole budget waits to run alone.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The longest one picture may take to decode before the request gives up on it.
const PICTURE_WORK_TIMEOUT: Duration = Duration::from_secs(20);
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
    work_timeout: Duration,
    queue_timeout: Duration,
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

    /// Runs `work`, which needs up to `memory_bytes` while it decodes, within its kind's
    /// share of the cores and the memory budget.
    pub async fn run<T: Send + 'static>(
        &self,
        job: PictureJob,
        memory_bytes: u64,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PictureWorkError> {
        let cores = match job {
            PictureJob::PhotoProof => &self.photo_proofs,
            PictureJob::QrReading => &self.qr_reading,
        };
        let mib = u32::try_from(memory_bytes.div_ceil(MIB))
            .unwrap_or(u32::MAX)
            .clamp(1, self.memory_mib);
        let shares = async {
            // The semaphores are never closed, so acquiring cannot fail. Cores before
            // memory, always in that order, so two jobs never hold one each and wait.
            let core = cores.clone().acquire_owned().await.ok();
            let memory = self.memory.clone().acquire_many_owned(mib).await.ok();
            (core, memory)
        };
        let permits = tokio::time::timeout(self.queue_timeout, shares)
            .await
            .map_err(|_| PictureWorkError::Busy)?;
        // The permits travel with the work: a decode that outlives its caller (after a
        // timeout) still counts against the bounds until it really ends.
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permits = permits;
            let _ = done.send(work());
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
                work.run(PictureJob::QrReading, MIB, move || {
                    let _ = wait.lock().map(|w| w.recv());
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(work.qr_reading.available_permits(), 0);
        // Both photo proofs still run at once while it does.
        let (a, b) = tokio::join!(
            work.run(PictureJob::PhotoProof, MIB, || 1),
            work.run(PictureJob::PhotoProof, MIB, || 2)
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
                work.run(PictureJob::PhotoProof, 10 * MIB, move || {
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
            tokio::spawn(async move { work.run(PictureJob::PhotoProof, 1 << 40, || "huge").await })
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
                work.run(PictureJob::PhotoProof, MIB, move || {
                    let _ = wait.recv();
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        // The stuck decode is too slow for its own request, and still holds the core...
        let waited = work.run(PictureJob::PhotoProof, MIB, || 1).await;
        assert_eq!(holding.await.ok(), Some(Err(PictureWorkError::TooSlow)));
        // ...so the next picture, which waited its limit without starting, is told so.
        assert_eq!(waited, Err(PictureWorkError::Busy));
        release.send(()).expect("the stuck decode ends");
    }

    #[tokio::test]
    async fn a_panicking_decoder_is_a_failed_picture_and_frees_its_share() {
        let work = PictureWork::new(1, 16);
        let failed = work
            .run(PictureJob::PhotoProof, MIB, || -> u8 {
                panic!("decoder bug")
            })
            .await;
        assert_eq!(failed, Err(PictureWorkError::Failed));
        assert_eq!(work.run(PictureJob::PhotoProof, MIB, || 7).await, Ok(7));
    }
}
