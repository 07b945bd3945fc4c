//! The ESS's side of synchronization, whatever the transport (spec: css-ess-protocol.md):
//! [`ess_loop`] runs registration, ping, polling and the outbox, and `ess_origin` sends the
//! ESS's own objects (update, data upload, delete) and handles the CSS's reports on them,
//! `download` fetches received copies' data, [`schedule`] decides when to poll,
//! over a [`link::EssLink`] that a transport implements (`crate::transport`). What the ESS
//! stores lives in `engine::receive` and `engine::origin`.

mod delta_fetch;
mod download;
pub mod ess_loop;
mod ess_origin;
pub mod link;
pub mod retry;
pub mod schedule;

pub use ess_loop::spawn;
