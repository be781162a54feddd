//! Where the store's busiest write transactions run: a runtime of their own, on a
//! thread of its own.
//!
//! A write transaction holds its locks (on SQLite the only writer; on PostgreSQL the rows
//! and intake counters it locks) from its first statement to its commit, and awaits every
//! statement in between. Run on the desk's runtime, each of those awaits puts the
//! transaction back in line behind every upload being parsed: at 64 clients on two
//! cores, `perf sched` found SQLite's writer asleep 62 % of the time, waiting for the
//! next statement of a transaction whose task had not been polled yet (docs/BENCHMARKS.md,
//! row 2). On this lane nothing else queues in front of it, so the lock is held only as
//! long as the statements take. That holds whole for SQLite, whose connection answers
//! from a thread of its own; a PostgreSQL connection's socket is still read by the
//! runtime that opened it, so there the lane takes away only part of the wait.
//!
//! What happens to work whose caller stops waiting (a client hanging up mid-upload) is the
//! caller's choice ([`Abandoned`]): a ticket's transaction runs to its end, as the ticket
//! will be acknowledged by its mail; the count of a request that went away is dropped
//! with it, as it was when it ran on the caller's task, so abandoned requests pile up no
//! work on the lane. On SQLite the transactions queued here are committed together, a
//! batch at a time (`sql/group_commit.rs`); a count already in a batch when its client
//! leaves is committed with the batch.

use std::future::Future;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;
use tracing::Instrument;

use super::{StoreError, StoreResult};

/// The runtime's handle, and what stops its thread when the store is dropped (tests start
/// hundreds of stores in one process).
pub(super) struct WriteLane {
    handle: Handle,
    _stop: oneshot::Sender<()>,
}

impl WriteLane {
    pub(super) fn start() -> StoreResult<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, handle) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("store-writes".into())
            .spawn(move || {
                // Built on its own thread, so it is dropped there too, never inside the
                // async code that started the lane.
                let runtime = match Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(error) => {
                        let _ = started.send(Err(error));
                        return;
                    }
                };
                let _ = started.send(Ok(runtime.handle().clone()));
                // Every piece of work on the lane holds it: the stop comes only
                // once none is left running.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
            })
            .map_err(StoreError::other)?;
        let handle = handle
            .recv()
            .map_err(StoreError::other)?
            .map_err(StoreError::other)?;
        Ok(Self {
            handle,
            _stop: stop,
        })
    }

    /// Runs `work` on the lane and gives back its result; `abandoned` says what becomes
    /// of it if the caller stops waiting. A panic in it goes on in the caller, as if the
    /// work had run there.
    pub(super) async fn run<T: Send + 'static>(
        &self,
        abandoned: Abandoned,
        work: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> StoreResult<T> {
        let mut task = AbortOnDrop {
            task: self.spawn(work),
            abort: abandoned == Abandoned::Stop,
        };
        let joined = (&mut task.task).await;
        match joined {
            Ok(result) => result,
            Err(failure) => match failure.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(cancelled) => Err(StoreError::other(cancelled)),
            },
        }
    }

    /// Runs `task` on the lane for as long as it takes, or until the lane stops.
    pub(super) fn spawn_background(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// The work, in the caller's tracing span: what it logs is logged with the request.
    fn spawn<T: Send + 'static>(
        &self,
        work: impl Future<Output = StoreResult<T>> + Send + 'static,
    ) -> tokio::task::JoinHandle<StoreResult<T>> {
        self.handle.spawn(work.instrument(tracing::Span::current()))
    }
}

/// What becomes of work on the lane whose caller stops waiting for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::store) enum Abandoned {
    /// It runs to its end.
    Finish,
    /// It is stopped where it is; a transaction stopped half-way rolls back.
    Stop,
}

/// A task's handle that stops the task when dropped unfinished, if `abort`.
struct AbortOnDrop<T> {
    task: tokio::task::JoinHandle<T>,
    abort: bool,
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        if self.abort {
            self.task.abort();
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
            .run(Abandoned::Finish, async {
                Ok(std::thread::current().name().map(str::to_owned))
            })
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
        let caller = lane.run(Abandoned::Finish, async move {
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
    async fn work_whose_caller_went_away_is_stopped_if_asked() {
        let lane = WriteLane::start().unwrap();
        let (go, wait) = oneshot::channel::<()>();
        let caller = lane.run(Abandoned::Stop, async move {
            let _ = wait.await;
            Ok(())
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(20), caller)
                .await
                .is_err()
        );
        // The work is dropped, and with it the receiver it waited on.
        for _ in 0..200 {
            if go.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the work went on without its caller");
    }

    #[tokio::test]
    async fn a_panic_in_the_work_goes_on_in_the_caller() {
        let lane = Arc::new(WriteLane::start().unwrap());
        let caller = tokio::spawn(async move {
            lane.run(Abandoned::Finish, async {
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
