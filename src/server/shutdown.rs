//! Graceful shutdown (docs/behaviour.md §3): stop accepting, let transactions in flight finish within a
//! grace period, then close what is left with `421 4.3.2`.
//!
//! One [`Shutdown`] is shared by the listeners and every connection. It moves forward
//! through three phases and never back.

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    /// No new connections; idle sessions close, transactions in progress continue.
    Draining,
    /// The grace period is over: everything closes now.
    Closing,
}

/// A handle on the shutdown state: clone it freely.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<Phase>,
    rx: watch::Receiver<Phase>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (tx, rx) = watch::channel(Phase::Running);
        Shutdown { tx, rx }
    }

    pub fn phase(&self) -> Phase {
        *self.rx.borrow()
    }

    /// Moves to `phase` if it is later than the current one.
    pub fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    /// Resolves once the phase is `phase` or later.
    pub async fn reached(&self, phase: Phase) {
        let mut rx = self.rx.clone();
        // An error means the sender is gone, which cannot happen while `self` lives.
        let _ = rx.wait_for(|p| *p >= phase).await;
    }
}
