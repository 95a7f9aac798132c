//! How tutti's threads wait: a stop signal that ends every sleep at once,
//! and the one backoff between retries of a lost device or broker.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shared stop signal of the source threads and the worker. Checking it
/// is one atomic load; [`Stop::sleep`] returns as soon as it is requested, so
/// a thread backing off for 30 s still stops within moments of SIGTERM.
#[derive(Clone, Default)]
pub struct Stop(Arc<Signal>);

#[derive(Default)]
struct Signal {
    requested: AtomicBool,
    lock: Mutex<()>,
    woken: Condvar,
}

impl Stop {
    /// Asks every holder to stop, and wakes those that sleep.
    pub fn request(&self) {
        self.0.requested.store(true, Ordering::Relaxed);
        // Taken so that a sleeper between its check and its wait is not missed.
        let _guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.0.woken.notify_all();
    }

    pub fn requested(&self) -> bool {
        self.0.requested.load(Ordering::Relaxed)
    }

    /// Sleeps for `duration`, or until a stop is requested; says whether it
    /// was (true: stop now).
    pub fn sleep(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        let mut guard = self.0.lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if self.requested() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = match self.0.woken.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// Capped exponential backoff between tries: each wait doubles the next, up
/// to a ceiling, until [`Backoff::reset`] after a success.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    upcoming: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Backoff {
            first,
            max,
            upcoming: first,
        }
    }

    /// The wait before the next try, doubling the one after.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.upcoming;
        self.upcoming = (wait * 2).min(self.max);
        wait
    }

    /// What [`Backoff::next_wait`] will give, for a log line.
    pub fn upcoming(&self) -> Duration {
        self.upcoming
    }

    /// After a success: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.upcoming = self.first;
    }
}

impl Default for Backoff {
    /// Reconnecting to a capture device or an MQTT broker: half a second,
    /// then doubling to at most 30 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(500), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(3));
        let waits: Vec<u128> = (0..5).map(|_| b.next_wait().as_millis()).collect();
        assert_eq!(waits, [500, 1000, 2000, 3000, 3000]);
        assert_eq!(b.upcoming(), Duration::from_secs(3));
        b.reset();
        assert_eq!(b.next_wait(), Duration::from_millis(500));
        assert_eq!(Backoff::default().upcoming(), Duration::from_millis(500));
    }

    #[test]
    fn a_stop_wakes_a_long_sleep() {
        let stop = Stop::default();
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || (stop.sleep(Duration::from_secs(3600)), Instant::now()))
        };
        std::thread::sleep(Duration::from_millis(50));
        let asked = Instant::now();
        stop.request();
        let (stopped, woke) = sleeper.join().unwrap();
        assert!(stopped, "the sleep ran to its end instead of stopping");
        // Woken by the request, not by the hour running out.
        assert!(woke.duration_since(asked) < Duration::from_secs(600));
        // Once requested, a sleep does not start at all.
        assert!(stop.sleep(Duration::from_secs(3600)));
    }

    #[test]
    fn a_short_sleep_ends_unstopped() {
        let stop = Stop::default();
        assert!(!stop.sleep(Duration::from_millis(1)));
        assert!(!stop.requested());
    }
}
