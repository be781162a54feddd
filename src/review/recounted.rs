//! A figure read from the whole database (the queue's counts per status, the time agents
//! take to answer), kept in memory and read again in the background once it is older
//! than a hundred times what reading it took, within bounds: at most about 1% of one
//! database connection for any such figure, and a page never waits for a re-read, except
//! for the very first. Each replica keeps its own.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::store::StoreError;

struct Read<T> {
    at: Instant,
    took: Duration,
    value: T,
}

pub struct Recounted<T> {
    /// What the figure is, for the log.
    what: &'static str,
    /// The bounds of how long a reading is kept.
    keep: (Duration, Duration),
    last: Mutex<Option<Read<T>>>,
    /// A re-read is running: the others keep the last reading meanwhile.
    reading: AtomicBool,
}

impl<T: Clone + Send + 'static> Recounted<T> {
    /// `what` names it in the log; a reading is kept a hundred times what it took, at
    /// least `shortest` and at most `longest`.
    pub fn new(what: &'static str, shortest: Duration, longest: Duration) -> Arc<Self> {
        Arc::new(Self {
            what,
            keep: (shortest, longest),
            last: Mutex::new(None),
            reading: AtomicBool::new(false),
        })
    }

    /// The figure and how old it is; `None` when the first reading failed (the page
    /// goes without it, and the next one asks again). `read` reads it from the database.
    pub async fn get<F, Fut>(self: &Arc<Self>, read: F) -> Option<(T, Duration)>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        match self.kept() {
            Some((value, age, stale)) => {
                if stale && !self.reading.swap(true, Ordering::AcqRel) {
                    let me = Arc::clone(self);
                    tokio::spawn(async move {
                        if let Err(error) = me.read(read).await {
                            tracing::warn!(error = %error, what = me.what, "could not be read again");
                        }
                        me.reading.store(false, Ordering::Release);
                    });
                }
                Some((value, age))
            }
            None => match self.read(read).await {
                Ok(()) => self.kept().map(|(value, age, _)| (value, age)),
                Err(error) => {
                    tracing::warn!(error = %error, what = self.what, "could not be read");
                    None
                }
            },
        }
    }

    /// The last reading, its age and whether it is due to be read again.
    fn kept(&self) -> Option<(T, Duration, bool)> {
        let last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        last.as_ref().map(|read| {
            let age = read.at.elapsed();
            (read.value.clone(), age, age >= self.kept_for(read.took))
        })
    }

    fn kept_for(&self, took: Duration) -> Duration {
        (took * 100).clamp(self.keep.0, self.keep.1)
    }

    async fn read<F, Fut>(&self, read: F) -> Result<(), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let started = Instant::now();
        let value = read().await?;
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(Read {
            at: Instant::now(),
            took: started.elapsed(),
            value,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_kept_a_hundred_times_what_it_took_within_bounds() {
        let figure = Recounted::<u8>::new("test", Duration::from_secs(1), Duration::from_secs(60));
        let kept_for = |ms| figure.kept_for(Duration::from_millis(ms));
        assert_eq!(kept_for(1), Duration::from_secs(1));
        assert_eq!(kept_for(120), Duration::from_secs(12));
        assert_eq!(kept_for(5_000), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn the_first_reading_is_waited_for_and_later_ones_are_not() {
        let figure = Recounted::<u32>::new("test", Duration::ZERO, Duration::ZERO);
        let (value, _) = figure.get(|| async { Ok(1) }).await.unwrap();
        assert_eq!(value, 1);
        // Stale at once (kept for zero): the last reading answers, a re-read starts.
        let (value, _) = figure.get(|| async { Ok(2) }).await.unwrap();
        assert_eq!(value, 1);
        for _ in 0..100 {
            tokio::task::yield_now().await;
            if figure.kept().is_some_and(|(v, _, _)| v == 2) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the re-read never landed");
    }

    #[tokio::test]
    async fn a_first_reading_that_fails_gives_nothing_and_is_tried_again() {
        let figure = Recounted::<u32>::new("test", Duration::ZERO, Duration::ZERO);
        assert!(
            figure
                .get(|| async { Err(StoreError::NotFound) })
                .await
                .is_none()
        );
        assert_eq!(figure.get(|| async { Ok(3) }).await.unwrap().0, 3);
    }
}
