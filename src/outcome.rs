//! The words for what became of a message: its kind, its outcome, a bounce's outcome.
//! Metrics label by them and log lines carry them, so they live here, apart from both and
//! depending on nothing.

macro_rules! words {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word as it appears in metrics and log lines.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub(crate) fn index(self) -> usize {
                self as usize
            }
        }
    };
}

/// Also used by the metrics for their own label words.
pub(crate) use words;

words! {
    /// Which kind of recipient a message was for.
    MessageKind {
        /// List-unsubscribe (`un-…`).
        Un => "un",
        /// Bounce (`bn-…`).
        Bn => "bn",
        Postmaster => "postmaster",
    }
}

words! {
    /// What became of a message, by the reply to DATA.
    MessageOutcome {
        /// 2xx: done (or recognised as already done).
        Accepted => "accepted",
        /// 5xx: refused for good.
        Refused => "refused",
        /// 4xx: the sender keeps it and retries.
        Temporary => "temporary",
    }
}

impl MessageOutcome {
    /// The outcome a reply code stands for.
    pub fn from_code(code: u16) -> MessageOutcome {
        match code {
            ..=399 => MessageOutcome::Accepted,
            400..=499 => MessageOutcome::Temporary,
            _ => MessageOutcome::Refused,
        }
    }
}

words! {
    /// What became of a bounce for one `bn` recipient (also on the transaction log line).
    BounceOutcome {
        /// Recorded and counted toward the threshold.
        Counted => "counted",
        /// Recorded, not counted (the log line says why).
        NotCounted => "not_counted",
        /// The threshold was passed, or a complaint came: unsubscribed from everything.
        Unsubscribed => "unsubscribed",
        /// No confirmed subscription matches the address: accepted and dropped.
        DroppedNoSubscription => "dropped_no_subscription",
        /// Already recorded (a retry): not counted again.
        Duplicate => "duplicate",
        /// Bounce handling is disabled: accepted and dropped.
        Disabled => "disabled",
        /// The API failed: not processed, the sender retries (451).
        Temporary => "temporary",
    }
}
