//! One-off GETs for readiness probes and the admin endpoint, with a
//! timeout; the body is returned as text.

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::time::Duration;

/// A keep-alive client for small admin requests.
#[derive(Clone)]
pub struct Fetcher {
    client: Client<HttpConnector, Empty<Bytes>>,
    timeout: Duration,
}

impl Fetcher {
    pub fn new(timeout: Duration) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout,
        }
    }

    /// The status and body of `GET uri`.
    pub async fn get(&self, uri: &Uri) -> Result<(u16, String), String> {
        let request = Request::get(uri.clone())
            .body(Empty::new())
            .map_err(|e| format!("GET {uri}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| format!("GET {uri}: no answer within {:?}", self.timeout))?
            .map_err(|e: String| format!("GET {uri}: {e}"))
    }
}
