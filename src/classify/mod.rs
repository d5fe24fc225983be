//! The bounce classifier: a pure function of the message bytes and the bounce settings.
//! No I/O happens here.
