//! Progress reporting without a user interface: library code reports through [`Progress`], and the
//! front end decides how (the CLI draws an `indicatif` bar; tests and scripts pass [`NoProgress`]).
//! Every method has a do-nothing default, so an implementation overrides only what it shows.

/// Where a long-running library function reports how far it is. Shared across worker threads.
pub trait Progress: Sync {
    /// The total amount of work (items, steps or bytes), when known.
    fn set_len(&self, _len: u64) {}
    /// How much of the work is done.
    fn set_position(&self, _pos: u64) {}
    /// `delta` more units are done.
    fn inc(&self, _delta: u64) {}
    /// What is being worked on now.
    fn set_message(&self, _msg: &str) {}
    /// A line of log output that must not be lost under the bar. Default: standard error.
    fn println(&self, line: &str) {
        eprintln!("{line}");
    }
    /// The work is over; the display, if any, is removed.
    fn finish(&self) {}
}

/// Reports nothing (log lines still go to standard error).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Count(AtomicU64);
    impl Progress for Count {
        fn inc(&self, d: u64) {
            self.0.fetch_add(d, Ordering::Relaxed);
        }
    }

    fn work(p: &dyn Progress) {
        p.set_len(3);
        (0..3).for_each(|_| p.inc(1));
        p.finish();
    }

    #[test]
    fn an_implementation_sees_only_what_it_overrides() {
        let c = Count(AtomicU64::new(0));
        work(&c);
        assert_eq!(c.0.load(Ordering::Relaxed), 3);
        work(&NoProgress);
    }
}
