//! HQ's receiver of the vans' signed journals (wire protocol v1, `docs/sync.md`).
//!
//! - [`protocol`]: the bytes both sides sign (requests, acknowledgements) and the JSON shapes.
//! - [`hq_key`]: HQ's signing key file.
//! - [`store`]: what HQ keeps per van, behind the [`store::Store`] trait; [`sqlite`] (one file,
//!   the default) and [`postgres`] (a fleet, several instances) implement it; [`database`] opens
//!   the one `--database` names.
//! - [`ingest`]: request authentication, batch ingest and checkpoints as plain functions over a
//!   store (no HTTP), each refusal a [`ingest::Rejection`] with its wire code.
//! - [`server`]: the axum routes on top.
//! - [`tls`]: TLS on `serve` (rustls, ring) and `tls-init`'s throwaway CA.
//! - [`downsync`]: publishing bundles and dossiers, serving them to vans signed.
//! - [`audit`]: `van-hq vans` and `van-hq verify`.
//!
//! This crate depends on the journal format (`mtu-journal`) and on nothing of the van.

pub mod audit;
pub mod database;
pub mod downsync;
pub mod hq_key;
pub mod ingest;
pub mod postgres;
pub mod protocol;
pub mod server;
pub mod sqlite;
pub mod store;
pub mod tls;
