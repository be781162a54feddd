//! Group commit: on SQLite, the write transactions queued on the write lane share one.
//!
//! SQLite has one writer, and every commit waits for the disk (`synchronous=FULL`: the
//! write-ahead log is synced before the desk answers). Each public upload makes two write
//! transactions, its intake count and its ticket, so at 64 clients the writing
//! connection spent a third of its time in fsync (docs/BENCHMARKS.md, the off-CPU
//! profile after the lane). Here the work that queues while one batch runs becomes the
//! next batch: one `BEGIN IMMEDIATE`, a savepoint around each caller's work (work that
//! fails rolls back its own statements only), one commit, one sync. Every caller hears
//! its result only after that commit, so a 201 still means its rows are on disk. No
//! batch waits for company: work that finds the lane idle runs at once, alone.
//!
//! PostgreSQL keeps one transaction per caller. Its writers run side by side, on several
//! replicas, locking rows and intake buckets as they go; a transaction holding many
//! callers' locks, taken in no one order, would deadlock with another replica's.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use sqlx::{Executor, Pool, Transaction};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{SqlStore, db};
use crate::store::dialect::Dialect;
use crate::store::write_lane::Abandoned;
use crate::store::write_lane::WriteLane;
use crate::store::{StoreError, StoreResult};

/// The most callers' work one batch holds: enough to take the whole queue at 64 clients
/// in two batches, few enough that the first caller of a batch does not wait long for
/// the last one's statements.
const MOST_PER_BATCH: usize = 32;

/// Where callers' work waits for its batch; the batches run on the write lane.
pub(super) type Queue<D> = mpsc::UnboundedSender<Box<dyn Unit<D>>>;

/// What a caller waiting on the lane hears: its work's result, or its panic.
type Outcome<T> = std::thread::Result<StoreResult<T>>;

/// Starts the task that runs the batches on `lane`, writing through `writer`; it ends
/// when the last copy of the queue is dropped with the store.
pub(super) fn start<D: Dialect>(lane: &WriteLane, writer: Pool<D>) -> Queue<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    let (queue, queued) = mpsc::unbounded_channel();
    lane.spawn_background(run_batches(writer, queued));
    queue
}

impl<D: Dialect> SqlStore<D>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    /// Runs `work` in a write transaction on the write lane and commits it if the work
    /// succeeds: on SQLite in the next batch, on PostgreSQL in a transaction of its own.
    /// `abandoned` says what becomes of it if the caller stops waiting. The work must run
    /// every statement in the transaction it is given: on SQLite the batch holds the one
    /// writing connection, so a statement on `writer()` would wait for itself.
    pub(super) async fn in_write_transaction<T, F>(
        &self,
        abandoned: Abandoned,
        work: F,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'t> FnOnce(&'t mut Transaction<'static, D>) -> BoxFuture<'t, StoreResult<T>>
            + Send
            + 'static,
    {
        let Some(queue) = &self.batches else {
            let writer = self.writer().clone();
            // The work keeps the lane running until it is done, even if the store is
            // dropped meanwhile.
            let lane = Arc::clone(&self.lane);
            return self
                .lane
                .run(abandoned, async move {
                    let _lane = lane;
                    let mut tx = D::begin_write(&writer).await.map_err(db)?;
                    let result = work(&mut tx).await;
                    if result.is_ok() {
                        tx.commit().await.map_err(db)?;
                    }
                    result
                })
                .await;
        };
        let (reply, outcome) = oneshot::channel();
        let unit = Queued {
            work: Box::new(work),
            abandoned,
            reply,
            span: tracing::Span::current(),
            lane: Arc::clone(&self.lane),
        };
        if queue.send(Box::new(unit)).is_err() {
            return Err(lane_stopped());
        }
        match outcome.await {
            Ok(Ok(result)) => result,
            // A panic in the work goes on in the caller, as if the work had run there.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(lane_stopped()),
        }
    }
}

/// The work was dropped unanswered: the lane's runtime stopped (only while the process
/// shuts down), or its batch panicked in the batch's own code and rolled back.
fn lane_stopped() -> StoreError {
    StoreError::other(std::io::Error::other(
        "the store's write lane dropped the work unanswered; it may not have been kept",
    ))
}

/// Takes what has queued, up to a batch, runs it, and goes back for more.
async fn run_batches<D: Dialect>(
    writer: Pool<D>,
    mut queued: mpsc::UnboundedReceiver<Box<dyn Unit<D>>>,
) where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    let mut batch = Vec::with_capacity(MOST_PER_BATCH);
    while queued.recv_many(&mut batch, MOST_PER_BATCH).await > 0 {
        // Every caller's panic is caught where its work runs; one here, in the batch's
        // own code, must not stop every later upload's writes: the batch's callers hear
        // that their reply went missing, its transaction rolls back as it is dropped.
        let ran = AssertUnwindSafe(run_batch(&writer, std::mem::take(&mut batch)))
            .catch_unwind()
            .await;
        if ran.is_err() {
            tracing::error!(
                "a batch of write transactions panicked; its callers were told it failed"
            );
        }
    }
}

/// One transaction for every unit of `batch` whose caller still wants it; each hears
/// its result once the commit is done, or the batch's failure if it is not.
async fn run_batch<D: Dialect>(writer: &Pool<D>, mut batch: Vec<Box<dyn Unit<D>>>)
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    batch.retain(|unit| !unit.gone());
    if batch.is_empty() {
        return;
    }
    let mut units = batch.into_iter();
    let mut tx = match D::begin_write(writer).await {
        Ok(tx) => tx,
        Err(error) => {
            let error = db(error);
            units.for_each(|unit| unit.fail(&error));
            return;
        }
    };
    let mut ran: Vec<Box<dyn Ran>> = Vec::new();
    while let Some(unit) = units.next() {
        // A count whose client hung up while it queued is not kept.
        if unit.gone() {
            continue;
        }
        if let Err(error) = statement(&mut tx, "SAVEPOINT unit").await {
            unit.fail(&error);
            return fail_batch(tx, ran, units, &error);
        }
        let done = unit.run(&mut tx).await;
        let ended = if done.succeeded() {
            statement(&mut tx, "RELEASE unit").await
        } else {
            // SQLite keeps a transaction going after most failed statements; one that it
            // rolled back itself (a full disk, an I/O error) has no savepoint left, and
            // so fails the batch here.
            match statement(&mut tx, "ROLLBACK TO unit").await {
                Ok(()) => statement(&mut tx, "RELEASE unit").await,
                failed => failed,
            }
        };
        ran.push(done);
        if let Err(error) = ended {
            return fail_batch(tx, ran, units, &error);
        }
    }
    let committed = tx.commit().await.map_err(db);
    if let Err(error) = &committed {
        tracing::warn!(%error, "a batch of write transactions could not be committed");
    }
    for done in ran {
        done.deliver(committed.as_ref().map(|_| ()));
    }
}

/// The batch cannot go on: nothing of it is kept, and every caller in it hears why.
fn fail_batch<D: Dialect>(
    tx: Transaction<'static, D>,
    ran: Vec<Box<dyn Ran>>,
    not_run: impl Iterator<Item = Box<dyn Unit<D>>>,
    error: &StoreError,
) {
    // Dropped, the transaction rolls back.
    drop(tx);
    tracing::warn!(%error, "a batch of write transactions failed; nothing of it was kept");
    for done in ran {
        done.deliver(Err(error));
    }
    not_run.for_each(|unit| unit.fail(error));
}

async fn statement<D: Dialect>(
    tx: &mut Transaction<'static, D>,
    sql: &'static str,
) -> StoreResult<()>
where
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
{
    sqlx::raw_sql(sql).execute(&mut **tx).await.map_err(db)?;
    Ok(())
}

/// A caller's work waiting for its batch, its result's type hidden so that one queue
/// holds every kind.
pub(super) trait Unit<D: Dialect>: Send {
    /// Its caller stopped waiting and asked for the work to stop then.
    fn gone(&self) -> bool;
    /// Runs the work in `tx`, catching a panic.
    fn run<'t>(self: Box<Self>, tx: &'t mut Transaction<'static, D>)
    -> BoxFuture<'t, Box<dyn Ran>>;
    /// Tells the caller its work was not run, and why.
    fn fail(self: Box<Self>, error: &StoreError);
}

/// Work that has run, its result held until the batch's commit.
pub(super) trait Ran: Send {
    fn succeeded(&self) -> bool;
    /// Gives the caller its result if the batch committed; else the batch's failure.
    fn deliver(self: Box<Self>, batch: Result<(), &StoreError>);
}

type Work<D, T> = Box<
    dyn for<'t> FnOnce(&'t mut Transaction<'static, D>) -> BoxFuture<'t, StoreResult<T>> + Send,
>;

struct Queued<D: Dialect, T> {
    work: Work<D, T>,
    abandoned: Abandoned,
    reply: oneshot::Sender<Outcome<T>>,
    /// The caller's span: what the work logs is logged with its request.
    span: tracing::Span,
    /// Keeps the lane running until the work is done, even if the store is dropped
    /// meanwhile: a ticket whose client hung up is still stored.
    lane: Arc<WriteLane>,
}

impl<D: Dialect, T: Send + 'static> Unit<D> for Queued<D, T> {
    fn gone(&self) -> bool {
        self.abandoned == Abandoned::Stop && self.reply.is_closed()
    }

    fn run<'t>(
        self: Box<Self>,
        tx: &'t mut Transaction<'static, D>,
    ) -> BoxFuture<'t, Box<dyn Ran>> {
        let Queued {
            work,
            reply,
            span,
            lane,
            ..
        } = *self;
        Box::pin(async move {
            // The call itself inside the guard too: a closure may do work before the
            // future it returns.
            let outcome = AssertUnwindSafe(async move { work(tx).await }.instrument(span))
                .catch_unwind()
                .await;
            Box::new(Done {
                outcome,
                reply,
                _lane: lane,
            }) as Box<dyn Ran>
        })
    }

    fn fail(self: Box<Self>, error: &StoreError) {
        let _ = self.reply.send(Ok(Err(for_each_caller(error))));
    }
}

struct Done<T> {
    outcome: Outcome<T>,
    reply: oneshot::Sender<Outcome<T>>,
    _lane: Arc<WriteLane>,
}

impl<T: Send> Ran for Done<T> {
    fn succeeded(&self) -> bool {
        matches!(self.outcome, Ok(Ok(_)))
    }

    fn deliver(self: Box<Self>, batch: Result<(), &StoreError>) {
        let outcome = match (self.outcome, batch) {
            (own, Ok(())) => own,
            // A panic stays the caller's own.
            (Err(panic), Err(_)) => Err(panic),
            // Its own failure may rest on rows of the batch that were never kept (a
            // newer export in a ticket stored a moment before it): the batch's failure
            // is what happened.
            (Ok(_), Err(error)) => Ok(Err(for_each_caller(error))),
        };
        let _ = self.reply.send(outcome);
    }
}

/// A batch's failure, told to each of its callers: an unreachable database stays one, so
/// the desk still answers "try again".
fn for_each_caller(error: &StoreError) -> StoreError {
    let text = std::io::Error::other(format!("{error}: {}", source_text(error)));
    match error {
        StoreError::Unavailable(_) => StoreError::Unavailable(Box::new(text)),
        _ => StoreError::Other(Box::new(text)),
    }
}

fn source_text(error: &StoreError) -> String {
    std::error::Error::source(error).map_or_else(String::new, ToString::to_string)
}

#[cfg(test)]
mod tests {
    use futures_util::future::join4;

    use super::*;
    use crate::store::SqliteStore;

    /// A store on a fresh SQLite file with one table of numbers to write.
    async fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("batches.db").display());
        let store = SqliteStore::connect(&url).await.unwrap();
        sqlx::raw_sql("CREATE TABLE numbers (n INTEGER NOT NULL)")
            .execute(store.writer())
            .await
            .unwrap();
        (dir, store)
    }

    /// The numbers committed, read on a connection of their own as any reader would.
    async fn committed(store: &SqliteStore) -> Vec<i64> {
        sqlx::query_scalar("SELECT n FROM numbers ORDER BY n")
            .fetch_all(&store.pool)
            .await
            .unwrap()
    }

    async fn insert(tx: &mut Transaction<'static, sqlx::Sqlite>, n: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO numbers (n) VALUES ($1)")
            .bind(n)
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        Ok(())
    }

    /// Work that stores `n`.
    async fn store_number(store: &SqliteStore, abandoned: Abandoned, n: i64) -> StoreResult<()> {
        store
            .in_write_transaction(abandoned, move |tx| Box::pin(insert(tx, n)))
            .await
    }

    /// Holds the lane in a batch that stores 0 until the returned sender fires, once that
    /// batch has begun: what is queued meanwhile makes the next batch together.
    async fn hold_the_lane(
        store: &SqliteStore,
    ) -> (
        oneshot::Sender<()>,
        tokio::task::JoinHandle<StoreResult<()>>,
    ) {
        let (go, held) = oneshot::channel::<()>();
        let (running, started) = oneshot::channel::<()>();
        let store = store.clone();
        let holder = tokio::spawn(async move {
            store
                .in_write_transaction(Abandoned::Finish, move |tx| {
                    Box::pin(async move {
                        insert(tx, 0).await?;
                        let _ = running.send(());
                        let _ = held.await;
                        Ok(())
                    })
                })
                .await
        });
        started.await.unwrap();
        (go, holder)
    }

    #[tokio::test]
    async fn work_queued_meanwhile_commits_together_and_a_failure_undoes_only_its_own() {
        let (_dir, store) = store().await;
        let (go, holder) = hold_the_lane(&store).await;
        // `join4` polls them in order: the three are queued, in that order, before the
        // held batch is let go.
        let first = async {
            store_number(&store, Abandoned::Finish, 1).await?;
            // Answered only once committed: any reader sees it now.
            Ok::<_, StoreError>(committed(&store).await)
        };
        let failing = store.in_write_transaction(Abandoned::Finish, |tx| {
            Box::pin(async move {
                // The first one's row, not yet committed: this is the same transaction.
                let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM numbers WHERE n = 1")
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db)?;
                insert(tx, 2).await?;
                Err::<(), _>(StoreError::other(std::io::Error::other(format!(
                    "saw {seen}"
                ))))
            })
        });
        let last = store_number(&store, Abandoned::Finish, 3);
        let (first, failing, last, ()) = join4(first, failing, last, async {
            go.send(()).unwrap();
        })
        .await;
        holder.await.unwrap().unwrap();
        assert_eq!(first.unwrap(), vec![0, 1, 3]);
        assert_eq!(source_text(&failing.unwrap_err()), "saw 1");
        last.unwrap();
        assert_eq!(committed(&store).await, vec![0, 1, 3]);
    }

    #[tokio::test]
    async fn work_whose_caller_left_while_queued_is_dropped_or_kept_as_asked() {
        let (_dir, store) = store().await;
        let (go, holder) = hold_the_lane(&store).await;
        // Polled once, queued, then given up on: as a client hanging up mid-upload.
        assert!(
            store_number(&store, Abandoned::Stop, 1)
                .now_or_never()
                .is_none()
        );
        assert!(
            store_number(&store, Abandoned::Finish, 2)
                .now_or_never()
                .is_none()
        );
        let (after, ()) =
            futures_util::future::join(store_number(&store, Abandoned::Finish, 3), async {
                go.send(()).unwrap()
            })
            .await;
        after.unwrap();
        holder.await.unwrap().unwrap();
        assert_eq!(committed(&store).await, vec![0, 2, 3]);
    }

    #[tokio::test]
    async fn a_panic_in_one_callers_work_goes_on_in_that_caller_only() {
        let (_dir, store) = store().await;
        let (go, holder) = hold_the_lane(&store).await;
        let panicking = store.in_write_transaction(Abandoned::Finish, |tx| {
            Box::pin(async move {
                insert(tx, 1).await?;
                if true {
                    panic!("the work failed");
                }
                Ok(())
            })
        });
        let (panicked, after, ()) = futures_util::future::join3(
            AssertUnwindSafe(panicking).catch_unwind(),
            store_number(&store, Abandoned::Finish, 2),
            async { go.send(()).unwrap() },
        )
        .await;
        holder.await.unwrap().unwrap();
        assert_eq!(
            panicked.unwrap_err().downcast_ref::<&str>(),
            Some(&"the work failed")
        );
        after.unwrap();
        assert_eq!(committed(&store).await, vec![0, 2]);
    }

    /// Work that ends the transaction under its batch, as SQLite does itself on an I/O
    /// error or a full disk, and then fails (the statement that hit the error) or, with
    /// `then_succeeds`, carries on as if nothing happened: the savepoint is gone either way.
    async fn batch_broken_by(then_succeeds: bool) {
        let (_dir, store) = store().await;
        let (go, holder) = hold_the_lane(&store).await;
        let first = store_number(&store, Abandoned::Finish, 1);
        let breaking = store.in_write_transaction(Abandoned::Finish, move |tx| {
            Box::pin(async move {
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                if then_succeeds {
                    Ok(())
                } else {
                    Err(StoreError::other(std::io::Error::other("disk full")))
                }
            })
        });
        let last = store_number(&store, Abandoned::Finish, 3);
        let (first, breaking, last, ()) = join4(first, breaking, last, async {
            go.send(()).unwrap();
        })
        .await;
        holder.await.unwrap().unwrap();
        let failed = [first, breaking, last];
        assert!(
            failed.iter().all(Result::is_err),
            "every caller of the batch hears it failed: {failed:?}"
        );
        assert_eq!(committed(&store).await, vec![0]);
        // The writing connection sqlx still counted inside a transaction is replaced.
        store_number(&store, Abandoned::Finish, 4).await.unwrap();
        assert_eq!(committed(&store).await, vec![0, 4]);
    }

    #[tokio::test]
    async fn a_batch_whose_savepoint_cannot_be_rolled_back_keeps_nothing_and_the_next_one_runs() {
        batch_broken_by(false).await;
    }

    #[tokio::test]
    async fn a_batch_whose_savepoint_cannot_be_released_keeps_nothing_and_the_next_one_runs() {
        batch_broken_by(true).await;
    }

    #[tokio::test]
    async fn a_batch_that_fails_to_commit_tells_every_caller_and_keeps_nothing() {
        let (_dir, store) = store().await;
        // Checked only at the commit: the one way a batch's commit fails here on demand.
        sqlx::raw_sql(
            "CREATE TABLE parents (id INTEGER PRIMARY KEY);
             CREATE TABLE orphans (parent INTEGER REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .execute(store.writer())
        .await
        .unwrap();
        let (go, holder) = hold_the_lane(&store).await;
        let first = store_number(&store, Abandoned::Finish, 1);
        let orphan = store.in_write_transaction(Abandoned::Finish, |tx| {
            Box::pin(async move {
                sqlx::raw_sql("INSERT INTO orphans (parent) VALUES (99)")
                    .execute(&mut **tx)
                    .await
                    .map_err(db)?;
                Ok(())
            })
        });
        let (first, orphan, ()) = futures_util::future::join3(first, orphan, async {
            go.send(()).unwrap();
        })
        .await;
        holder.await.unwrap().unwrap();
        assert!(first.is_err() && orphan.is_err(), "{first:?} {orphan:?}");
        assert_eq!(committed(&store).await, vec![0]);
        store_number(&store, Abandoned::Finish, 2).await.unwrap();
        assert_eq!(committed(&store).await, vec![0, 2]);
    }

    #[tokio::test]
    async fn work_to_finish_is_done_even_if_the_store_is_dropped_meanwhile() {
        let (dir, store) = store().await;
        let (go, holder) = hold_the_lane(&store).await;
        // A ticket whose client hung up, queued behind the held batch...
        assert!(
            store_number(&store, Abandoned::Finish, 1)
                .now_or_never()
                .is_none()
        );
        // ...and then every copy of the store goes: this one, and the holder's with its
        // answer.
        drop(store);
        go.send(()).unwrap();
        holder.await.unwrap().unwrap();
        let url = format!("sqlite://{}", dir.path().join("batches.db").display());
        let reopened = SqliteStore::connect(&url).await.unwrap();
        for _ in 0..500 {
            if committed(&reopened).await == vec![0, 1] {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the queued work was lost with the store");
    }
}
