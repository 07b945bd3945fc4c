//! Node-to-node synchronization transports (spec: css-ess-protocol.md). This module holds the
//! ESS side of the HTTP transport: [`ess_client`] speaks `/spi/v1` to the CSS, [`ess_loop`]
//! runs registration, ping, polling and the outbox. What the ESS stores lives in
//! `engine::receive`; the CSS side is served by the API's `/spi/v1` routes.

pub mod ess_client;
pub mod ess_loop;

pub use ess_loop::{spawn as spawn_ess, SyncStartError};
