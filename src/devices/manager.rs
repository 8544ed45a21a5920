//! Device manager: one thread owns each port; health as events; async handles for the daemon.
