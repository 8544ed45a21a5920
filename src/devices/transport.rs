//! The serial transport shared by every driver: exclusive open, line settings, deadlines,
//! unplug detection and reopen with backoff.
