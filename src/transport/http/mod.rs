//! The HTTP transport, both roles: the CSS's `/spi/v1` routes, which its nodes call
//! ([`css`]; served from the server's router in `api`, whose request parsing, error mapping
//! and metrics they share), the ESS's client of those routes ([`ess`]), and the calls of
//! applications' webhooks ([`webhooks`]).

pub mod css;
pub mod ess;
pub mod webhooks;
