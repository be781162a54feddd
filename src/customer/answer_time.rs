//! What the desk tells a customer about when they will hear back: what it measured, not
//! a promise. The median time from request to decision over the last seven days, once
//! at least [`MIN_DECISIONS`] decisions were made in them; without enough data the
//! customer is told no time at all. Read again at most every few minutes
//! (`review::recounted`), since it changes slowly and every status page and
//! acknowledgment asks for it.

use std::sync::Arc;
use std::time::Duration;

use crate::domain::Timestamp;
use crate::i18n::Lang;
use crate::review::recounted::Recounted;
use crate::store::Store;

/// The week the median is taken over.
pub const WINDOW_SECS: i64 = 7 * 86_400;
/// Fewer decisions than this in the week say nothing worth promising.
pub const MIN_DECISIONS: usize = 20;
/// The newest decisions the median is taken from, on a busy desk.
const MAX_DECISIONS: i64 = 10_000;

pub struct AnswerTime(Arc<Recounted<Option<i64>>>);

impl Default for AnswerTime {
    fn default() -> Self {
        Self(Recounted::new(
            "the time agents take to answer",
            Duration::from_secs(60),
            Duration::from_secs(600),
        ))
    }
}

impl AnswerTime {
    /// The median seconds from request to decision over the week before `now`; `None`
    /// without enough decisions (or when they cannot be read).
    pub async fn median_secs(&self, store: &Arc<dyn Store>, now: Timestamp) -> Option<i64> {
        let store = Arc::clone(store);
        let since = now.plus_seconds(-WINDOW_SECS);
        let read = move || async move {
            let seconds = store.decision_seconds_since(since, MAX_DECISIONS).await?;
            Ok(median(seconds))
        };
        self.0.get(read).await.and_then(|(median, _)| median)
    }
}

/// The median of `seconds`, when there are enough of them.
fn median(mut seconds: Vec<i64>) -> Option<i64> {
    if seconds.len() < MIN_DECISIONS {
        return None;
    }
    seconds.sort_unstable();
    Some(seconds[seconds.len() / 2].max(0))
}

/// A duration as a customer reads it, in their language: minutes up to an hour and a
/// half, hours up to two days, days beyond, rounded up (so only minutes can be one).
pub fn words(t: Lang, seconds: i64) -> String {
    let minutes = (seconds.max(1) + 59) / 60;
    if minutes == 1 {
        return t.text("duration.minute");
    }
    let (key, n) = if minutes < 90 {
        ("duration.minutes", minutes)
    } else if minutes < 48 * 60 {
        ("duration.hours", (minutes + 59) / 60)
    } else {
        ("duration.days", (minutes + 24 * 60 - 1) / (24 * 60))
    };
    t.fill(key).with("n", n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_needs_enough_decisions() {
        assert_eq!(median(vec![60; MIN_DECISIONS - 1]), None);
        let mut seconds: Vec<i64> = (1..=21).map(|i| i * 100).collect();
        seconds.reverse();
        assert_eq!(median(seconds), Some(1100));
    }

    #[test]
    fn durations_read_as_minutes_hours_or_days_in_each_language() {
        assert_eq!(words(Lang::En, 30), "1 minute");
        assert_eq!(words(Lang::En, 45 * 60), "45 minutes");
        assert_eq!(words(Lang::En, 100 * 60), "2 hours");
        assert_eq!(words(Lang::En, 3600), "60 minutes");
        assert_eq!(words(Lang::En, 50 * 3600), "3 days");
        assert_eq!(words(Lang::Es, 45 * 60), "45 minutos");
        assert_eq!(words(Lang::Es, 60), "1 minuto");
        assert_eq!(words(Lang::Es, 30 * 3600), "30 horas");
    }
}
