//! `vanctl journal …`.
