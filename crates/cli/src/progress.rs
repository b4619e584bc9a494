//! The CLI's progress display: an `indicatif` bar behind the libraries' `Progress` trait.

use std::ops::Deref;

use indicatif::ProgressBar;
use sam3lab_util::progress::Progress;

/// An `indicatif` bar the library functions report to (`&bar` is a `&dyn Progress`); it derefs
/// to the bar for styling and messages.
pub struct Bar(pub ProgressBar);

impl Progress for Bar {
    fn set_len(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_position(&self, pos: u64) {
        self.0.set_position(pos);
    }
    fn inc(&self, delta: u64) {
        self.0.inc(delta);
    }
    fn set_message(&self, msg: &str) {
        self.0.set_message(msg.to_string());
    }
    fn println(&self, line: &str) {
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl Deref for Bar {
    type Target = ProgressBar;
    fn deref(&self) -> &ProgressBar {
        &self.0
    }
}
