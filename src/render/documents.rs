//! Document layouts.
