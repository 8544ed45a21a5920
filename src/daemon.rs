//! The daemon: open the journal, verify its tail, run until SIGTERM/SIGINT.
