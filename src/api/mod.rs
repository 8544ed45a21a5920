//! The van's local HTTP API (`/api/v1`, JSON and server-sent events), documented in `docs/api.md`.
//!
//! The officer console and scripts use this API and nothing else. It does HTTP only: sessions,
//! roles, strict request parsing and error bodies; the service desk behind the [`desk::Desk`]
//! trait does the rest.

pub mod desk;
