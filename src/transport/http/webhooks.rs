//! The HTTP call of a webhook: one `POST` of an object's metadata per attempt, bounded by a
//! timeout; the engine queues the calls and decides on retries.

use crate::engine::{PostResult, WebhookPoster};
use bytes::Bytes;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::StatusCode;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Connecting, sending and receiving the answer, per attempt.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Makes webhook calls with a client built at the first one: loading the system roots is
/// wasted on nodes without webhooks.
#[derive(Default)]
pub struct HttpWebhooks {
    client: OnceCell<Result<reqwest::Client, String>>,
}

#[async_trait::async_trait]
impl WebhookPoster for HttpWebhooks {
    async fn post(&self, url: &str, body: Bytes) -> PostResult {
        let client = match self.client().await {
            Ok(client) => client,
            Err(e) => {
                return PostResult::NotSent {
                    error: format!("no webhook client: {e}"),
                    retry: false,
                }
            }
        };
        let sent = client
            .post(url)
            // The original's spelling; media types are case-insensitive.
            .header(CONTENT_TYPE, HeaderValue::from_static("Application/JSON"))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) if matches!(response.status(), StatusCode::OK | StatusCode::NO_CONTENT) => {
                PostResult::Delivered
            }
            Ok(response) => PostResult::Answered {
                status: response.status().as_u16(),
                retry: response.status().is_server_error(),
            },
            Err(e) => PostResult::NotSent {
                error: e.to_string(),
                // A request that cannot even be built fails the same way every time.
                retry: !e.is_builder(),
            },
        }
    }
}

impl HttpWebhooks {
    async fn client(&self) -> Result<&reqwest::Client, &str> {
        self.client
            .get_or_init(|| async {
                let built = tokio::task::spawn_blocking(build_client)
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()));
                if let Err(e) = &built {
                    tracing::error!(error = %e, "cannot build the webhook client; webhooks are not called");
                }
                built
            })
            .await
            .as_ref()
            .map_err(String::as_str)
    }
}

fn build_client() -> Result<reqwest::Client, String> {
    let tls = crate::tls::webhook_client_config().map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        // A followed redirect would turn the POST into a GET without the metadata.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(ATTEMPT_TIMEOUT)
        .timeout(ATTEMPT_TIMEOUT)
        .use_preconfigured_tls((*tls).clone())
        .build()
        .map_err(|e| e.to_string())
}
