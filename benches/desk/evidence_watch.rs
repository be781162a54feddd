//! The evidence worker watched from outside (issue 18, item 5): whether it keeps up with
//! the intake, and how long a ticket waits from its 201 to its finding.
//!
//! A job row keeps `created_at` and `finished_at` in whole seconds, too coarse for a
//! target of 2 s, and the desk's `resetdesk_evidence_jobs_pending` gauge is set once per
//! worker round. So the bench reads `evidence_jobs` itself, on a read-only connection of
//! its own, every [`EVERY`]: how many jobs are pending, and which jobs have ended since the
//! last look. A job's end is timed when the look that first sees it returns, so the time
//! to finding is an upper bound, late by at most one interval and a query.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnectOptions;

/// How often the jobs are looked at: fine against the 2 s target, and two small indexed
/// queries 40 times a second cost the desk's two cores little.
pub const EVERY: Duration = Duration::from_millis(25);

/// Jobs are looked for from this many ids below the lowest pending one. On PostgreSQL an
/// identity is drawn before its transaction commits, so a job that becomes visible later
/// may have a lower id than one seen pending already; at most as many as intakes are in
/// flight at once (64 clients in the closed loop, far fewer at half of peak).
const ID_MARGIN: i64 = 128;

enum Connection {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

/// What one look found: pending jobs, the lowest pending id, the highest id of all.
type Counts = (i64, Option<i64>, Option<i64>);

const COUNTS: &str = "SELECT (SELECT COUNT(*) FROM evidence_jobs WHERE status = 'pending'),
        (SELECT MIN(id) FROM evidence_jobs WHERE status = 'pending'),
        (SELECT MAX(id) FROM evidence_jobs)";
const ENDED: &str = "SELECT j.id, t.number, j.status FROM evidence_jobs j
     JOIN tickets t ON t.id = j.ticket_id
     WHERE j.id >= $1 AND j.status <> 'pending'";

impl Connection {
    /// Read-only, so the bench cannot change what it measures.
    async fn open(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .expect("a SQLite URL")
                .read_only(true);
            Self::Sqlite(
                sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("the desk's SQLite database opens"),
            )
        } else {
            let mut connection = sqlx::PgConnection::connect(url)
                .await
                .expect("the desk's PostgreSQL database");
            sqlx::query("SET default_transaction_read_only = on")
                .execute(&mut connection)
                .await
                .expect("a read-only session");
            Self::Postgres(connection)
        }
    }

    async fn counts(&mut self) -> Counts {
        match self {
            Self::Sqlite(c) => sqlx::query_as(COUNTS).fetch_one(c).await,
            Self::Postgres(c) => sqlx::query_as(COUNTS).fetch_one(c).await,
        }
        .expect("the jobs are counted")
    }

    /// Jobs with an id of at least `from` that are no longer pending: id, ticket, status.
    async fn ended(&mut self, from: i64) -> Vec<(i64, String, String)> {
        match self {
            Self::Sqlite(c) => sqlx::query_as(ENDED).bind(from).fetch_all(c).await,
            Self::Postgres(c) => sqlx::query_as(ENDED).bind(from).fetch_all(c).await,
        }
        .expect("the ended jobs are read")
    }
}

/// The pending jobs right now, in one look.
pub async fn pending_now(url: &str) -> i64 {
    Connection::open(url).await.counts().await.0
}

#[derive(Default)]
pub struct Seen {
    /// Pending jobs at each look, and when the look returned.
    pub pending: Vec<(Instant, i64)>,
    /// Ticket number → when its job was first seen ended, and how ("done", "failed", …).
    pub ended: HashMap<String, (Instant, String)>,
}

/// A task looking at the jobs every [`EVERY`] until it is stopped.
pub struct Watch {
    seen: Arc<Mutex<Seen>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    pub async fn start(url: &str) -> Self {
        let mut connection = Connection::open(url).await;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            let mut from = 0;
            let mut ids = std::collections::HashSet::new();
            let mut tick = tokio::time::interval(EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return,
                }
                // Counted first: every job that existed then and was no longer pending is
                // among the ended rows read after, so a count of 0 means all were seen.
                let (pending, lowest_pending, highest) = connection.counts().await;
                let counted = Instant::now();
                let ended = connection.ended(from).await;
                let read = Instant::now();
                let mut seen = shared.lock().expect("the watch's record");
                seen.pending.push((counted, pending));
                for (id, ticket, status) in ended {
                    if ids.insert(id) {
                        seen.ended.insert(ticket, (read, status));
                    }
                }
                let below = lowest_pending.or(highest.map(|h| h + 1)).unwrap_or(0);
                from = (below - ID_MARGIN).max(from);
            }
        });
        Self { seen, stop, task }
    }

    /// Waits until a look taken after `after` finds no job pending, or until `limit` has
    /// passed; the time of that look, if it came.
    pub async fn drained_after(&self, after: Instant, limit: Duration) -> Option<Instant> {
        loop {
            {
                let seen = self.seen.lock().expect("the watch's record");
                if let Some(&(at, _)) = seen
                    .pending
                    .iter()
                    .find(|(at, pending)| *at >= after && *pending == 0)
                {
                    return Some(at);
                }
            }
            if after.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(EVERY).await;
        }
    }

    pub async fn stop(self) -> Seen {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        Arc::try_unwrap(self.seen)
            .ok()
            .expect("the watch has stopped")
            .into_inner()
            .expect("the watch's record")
    }
}
