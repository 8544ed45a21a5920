//! The daemon's local control socket (`<state_dir>/vand.sock`): JSON lines for vanctl.
