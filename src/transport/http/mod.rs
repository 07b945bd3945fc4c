//! The HTTP transport: the ESS's client of the CSS's `/spi/v1` routes ([`ess`]), and the
//! calls of applications' webhooks ([`webhooks`]). The CSS's
//! side is served by the HTTP server with the application routes (`api::spi`), whose
//! routing, authentication and error mapping it shares.

pub mod ess;
pub mod webhooks;
