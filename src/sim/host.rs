//! Hosts simulators on pseudo-terminal pairs with stable symlinks, scenario files and a control socket.
