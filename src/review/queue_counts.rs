//! How many tickets each status holds, for the queue's counts.
//!
//! Counting reads every ticket's status (an index scan: some 100 ms at a million tickets),
//! so a page must not count each time it is shown, and keeping exact counters instead
//! would make every intake and decision on every replica update the same few rows. Each
//! replica keeps the last count and counts again, in the background, once it is older
//! than a hundred times what counting took (between 1 and 60 seconds): at most about 1%
//! of one database connection, and counts a few seconds old on a small desk. A page is
//! never kept waiting for a recount, except for the very first count.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::TicketStatus;
use crate::store::{Store, StoreError};

/// Counts as the queue shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusCounts {
    /// Each status in `TicketStatus::ALL`'s order, with its count (zero included).
    pub by_status: Vec<(TicketStatus, i64)>,
    /// Open tickets waiting for a second approval (counted among the open ones too).
    pub awaiting_second_approval: i64,
    /// How long ago they were counted, in whole seconds.
    pub age_secs: u64,
}

impl StatusCounts {
    pub fn of(&self, status: TicketStatus) -> i64 {
        self.by_status
            .iter()
            .find(|(s, _)| *s == status)
            .map_or(0, |(_, n)| *n)
    }

    pub fn total(&self) -> i64 {
        self.by_status.iter().map(|(_, n)| n).sum()
    }
}

struct Counted {
    at: Instant,
    took: Duration,
    by_status: Vec<(TicketStatus, i64)>,
    awaiting_second_approval: i64,
}

impl Counted {
    /// Counts kept this long are counted again: a hundredth of the time spent counting.
    fn fresh_for(&self) -> Duration {
        (self.took * 100).clamp(Duration::from_secs(1), Duration::from_secs(60))
    }
}

#[derive(Default)]
pub struct QueueCounts {
    last: Mutex<Option<Counted>>,
    /// A recount is running: the others keep showing the last count meanwhile.
    counting: AtomicBool,
}

impl QueueCounts {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The counts, at most a little stale; `None` when the first count failed (the
    /// queue is shown without them, and the next page asks again).
    pub async fn get(self: &Arc<Self>, store: &Arc<dyn Store>) -> Option<StatusCounts> {
        let kept = self.kept();
        match kept {
            Some((counts, stale)) => {
                if stale && !self.counting.swap(true, Ordering::AcqRel) {
                    let (me, store) = (Arc::clone(self), Arc::clone(store));
                    tokio::spawn(async move {
                        if let Err(error) = me.count(store.as_ref()).await {
                            tracing::warn!(error = %error, "the queue's counts could not be counted again");
                        }
                        me.counting.store(false, Ordering::Release);
                    });
                }
                Some(counts)
            }
            None => match self.count(store.as_ref()).await {
                Ok(()) => self.kept().map(|(counts, _)| counts),
                Err(error) => {
                    tracing::warn!(error = %error, "the queue's counts could not be counted");
                    None
                }
            },
        }
    }

    /// The last counts and whether they are due for a recount.
    fn kept(&self) -> Option<(StatusCounts, bool)> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().map(|counted| {
            let age = counted.at.elapsed();
            (
                StatusCounts {
                    by_status: counted.by_status.clone(),
                    awaiting_second_approval: counted.awaiting_second_approval,
                    age_secs: age.as_secs(),
                },
                age >= counted.fresh_for(),
            )
        })
    }

    async fn count(&self, store: &dyn Store) -> Result<(), StoreError> {
        let started = Instant::now();
        let counted = store.status_counts().await?;
        let awaiting_second_approval = store.awaiting_second_approval_count().await?;
        let by_status = TicketStatus::ALL
            .iter()
            .map(|status| {
                let n = counted
                    .iter()
                    .find(|(s, _)| s == status)
                    .map_or(0, |(_, n)| *n);
                (*status, n)
            })
            .collect();
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Counted {
            at: Instant::now(),
            took: started.elapsed(),
            by_status,
            awaiting_second_approval,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_a_hundred_times_what_counting_took_within_bounds() {
        let kept_for = |took_ms| {
            Counted {
                at: Instant::now(),
                took: Duration::from_millis(took_ms),
                by_status: Vec::new(),
                awaiting_second_approval: 0,
            }
            .fresh_for()
        };
        assert_eq!(kept_for(1), Duration::from_secs(1));
        assert_eq!(kept_for(120), Duration::from_secs(12));
        assert_eq!(kept_for(5_000), Duration::from_secs(60));
    }
}
