//! Rate limits for the public intake: per client address and per device serial, in a
//! sliding window. Kept in memory: each replica limits what it sees, which bounds an
//! abusive burst to a small multiple of the limit without a database round trip on a
//! path that must stay cheap. An exceeded limit is a 429 with Retry-After, never a 500.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::domain::Timestamp;

/// Above this many tracked keys, old ones are pruned so memory stays bounded.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct SlidingWindow {
    hits: Mutex<HashMap<String, VecDeque<i64>>>,
}

impl SlidingWindow {
    /// Counts a hit for `key` unless it already had `limit` hits in the last
    /// `window_secs`; then returns how many seconds until the next hit is allowed.
    pub fn hit(&self, key: &str, limit: u32, window_secs: i64, now: Timestamp) -> Result<(), i64> {
        if limit == 0 {
            return Ok(());
        }
        let now = now.unix_seconds();
        let mut hits = self.hits.lock().unwrap_or_else(|e| e.into_inner());
        if hits.len() > MAX_KEYS {
            hits.retain(|_, times| times.back().is_some_and(|last| now - last < window_secs));
        }
        let times = hits.entry(key.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|first| now - first >= window_secs)
        {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            let oldest = times.front().copied().unwrap_or(now);
            return Err((oldest + window_secs - now).max(1));
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn allows_the_limit_then_says_when_to_retry() {
        let window = SlidingWindow::default();
        assert_eq!(window.hit("a", 2, 60, at(0)), Ok(()));
        assert_eq!(window.hit("a", 2, 60, at(10)), Ok(()));
        assert_eq!(window.hit("a", 2, 60, at(20)), Err(40));
        assert_eq!(window.hit("b", 2, 60, at(20)), Ok(()), "keys are separate");
        assert_eq!(
            window.hit("a", 2, 60, at(60)),
            Ok(()),
            "the first hit left the window"
        );
        assert_eq!(
            window.hit("a", 0, 60, at(60)),
            Ok(()),
            "zero means no limit"
        );
    }
}
