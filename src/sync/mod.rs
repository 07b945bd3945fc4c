//! Node-to-node synchronization transports (spec: css-ess-protocol.md). This module holds the
//! ESS side of the HTTP transport: [`ess_client`] speaks `/spi/v1` to the CSS, [`ess_loop`]
//! runs registration, ping, polling and the outbox, `ess_origin` sends the ESS's own
//! objects (update, data upload, delete) and handles the CSS's reports on them. What the ESS
//! stores lives in `engine::receive` and `engine::origin`; the CSS side is served by the
//! API's `/spi/v1` routes.

pub mod ess_client;
pub mod ess_loop;
mod ess_origin;

pub use ess_loop::{spawn as spawn_ess, SyncStartError};
