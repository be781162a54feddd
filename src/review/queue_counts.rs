//! How many tickets each status holds, for the queue's counts.
//!
//! Counting reads every ticket's status (an index scan: some 100 ms at a million tickets),
//! so a page must not count each time it is shown, and keeping exact counters instead
//! would make every intake and decision on every replica update the same few rows. Each
//! replica keeps the last count and counts again in the background (`Recounted`: once
//! it is older than a hundred times what counting took, between 1 and 60 seconds), so
//! counts are a few seconds old on a small desk.

use std::sync::Arc;
use std::time::Duration;

use super::recounted::Recounted;
use crate::domain::TicketStatus;
use crate::store::Store;

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

pub struct QueueCounts(Arc<Recounted<StatusCounts>>);

impl Default for QueueCounts {
    fn default() -> Self {
        Self(Recounted::new(
            "the queue's counts",
            Duration::from_secs(1),
            Duration::from_secs(60),
        ))
    }
}

impl QueueCounts {
    /// The counts, at most a little stale; `None` when the first count failed (the
    /// queue is shown without them, and the next page asks again).
    pub async fn get(&self, store: &Arc<dyn Store>) -> Option<StatusCounts> {
        let store = Arc::clone(store);
        let (counts, age) = self.0.get(move || count(store)).await?;
        Some(StatusCounts {
            age_secs: age.as_secs(),
            ..counts
        })
    }
}

async fn count(store: Arc<dyn Store>) -> Result<StatusCounts, crate::store::StoreError> {
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
    Ok(StatusCounts {
        by_status,
        awaiting_second_approval,
        age_secs: 0,
    })
}
