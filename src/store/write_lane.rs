//! Where the store's busiest write transactions run: a runtime of their own, on a
//! thread of its own.
//!
//! A write transaction holds the database's write lock (SQLite's only writer; on
//! PostgreSQL the audit chain's lock) from its first statement to its commit, and awaits
//! every statement in between. Run on the desk's runtime, each of those awaits puts the
//! transaction back in line behind every upload being parsed: at 64 clients on two
//! cores, `perf sched` found SQLite's writer asleep 62 % of the time, waiting for the
//! next statement of a transaction whose task had not been polled yet (docs/BENCHMARKS.md,
//! row 2). On this lane nothing else queues in front of it, so the lock is held only as
//! long as the statements take.
//!
//! A transaction given to the lane runs to its end even if the caller stops waiting (a
//! client hanging up mid-upload): it commits or rolls back as a whole, as before, and a
//! ticket committed for a caller that went away is still acknowledged by its mail.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use super::{StoreError, StoreResult};

/// The runtime's handle, and what stops its thread when the store is dropped (tests start
/// hundreds of stores in one process).
pub(super) struct WriteLane {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl WriteLane {
    pub(super) fn start() -> StoreResult<Self> {
        let runtime = Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::other)?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("store-writes".into())
            .spawn(move || {
                // Every transaction holds the store, and so this lane: the stop comes only
                // once none is left running.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(StoreError::other)?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the lane and gives back its result; a panic in it goes on in the
    /// caller, as if the work had run there.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        work: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        match self.handle.spawn(work).await {
            Ok(result) => result,
            Err(failure) => match failure.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(cancelled) => Err(StoreError::other(cancelled)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_lanes_own_thread() {
        let lane = WriteLane::start().unwrap();
        let name = lane
            .run(async { Ok(std::thread::current().name().map(str::to_owned)) })
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("store-writes"));
    }

    #[tokio::test]
    async fn work_whose_caller_went_away_still_runs_to_its_end() {
        let lane = Arc::new(WriteLane::start().unwrap());
        let (go, wait) = oneshot::channel::<()>();
        let finished = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&finished);
        let caller = lane.run(async move {
            let _ = wait.await;
            done.store(true, Ordering::SeqCst);
            Ok(())
        });
        // The caller gives up while the work waits, as a client hanging up would.
        assert!(
            tokio::time::timeout(Duration::from_millis(20), caller)
                .await
                .is_err()
        );
        go.send(()).unwrap();
        for _ in 0..200 {
            if finished.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the work stopped with its caller");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_goes_on_in_the_caller() {
        let lane = Arc::new(WriteLane::start().unwrap());
        let caller = tokio::spawn(async move {
            lane.run(async {
                if true {
                    panic!("the work failed");
                }
                Ok(())
            })
            .await
        });
        let failure = caller.await.unwrap_err();
        assert!(failure.is_panic());
        let message = failure.into_panic();
        assert_eq!(message.downcast_ref::<&str>(), Some(&"the work failed"));
    }

    #[tokio::test]
    async fn dropping_the_lane_stops_its_runtime() {
        let lane = WriteLane::start().unwrap();
        // Work that never ends, holding a sender: when the runtime stops, the work is
        // dropped and the sender with it.
        let (held, gone) = std::sync::mpsc::channel::<()>();
        lane.handle.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        drop(lane);
        let outcome =
            tokio::task::spawn_blocking(move || gone.recv_timeout(Duration::from_secs(5)))
                .await
                .unwrap();
        assert_eq!(
            outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
        );
    }
}
