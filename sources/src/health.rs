//! The HTTP health probe of the daemon (`daemon.health_url`, e.g. nym-node's
//! `http://127.0.0.1:8080/api/v1/health`): a GET with the health timeout, judged by
//! [`nymvisor_core::health::judge`].

use std::time::Duration;

use nymvisor_core::health::{Health, HealthProbe, judge};

/// Most of a health answer read.
const MAX_BODY: u64 = 64 * 1024;

/// See the module docs.
#[derive(Debug)]
pub struct HttpHealth {
    client: reqwest::Client,
    url: String,
    timeout: Duration,
}

impl HttpHealth {
    pub fn new(url: &str, timeout: Duration) -> Result<HttpHealth, crate::Error> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("nymvisor/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::Client(e.to_string()))?;
        Ok(HttpHealth {
            client,
            url: url.to_owned(),
            timeout,
        })
    }
}

#[async_trait::async_trait]
impl HealthProbe for HttpHealth {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn probe(&self) -> Health {
        let failed = |answer: String| Health {
            healthy: false,
            answer,
        };
        let resp = match self.client.get(&self.url).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return failed(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ));
            }
            Err(e) if e.is_connect() => return failed("connection refused".to_owned()),
            Err(e) => return failed(format!("request failed: {e}")),
        };
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        let mut resp = resp;
        while let Ok(Some(chunk)) = resp.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() as u64 >= MAX_BODY {
                break;
            }
        }
        judge(status, &body)
    }
}

/// The configured probe, if a health URL is set.
pub fn from_config(
    config: &nymvisor_core::config::Config,
) -> Result<Option<std::sync::Arc<dyn HealthProbe>>, crate::Error> {
    match &config.daemon.health_url {
        Some(url) => Ok(Some(std::sync::Arc::new(HttpHealth::new(
            url,
            config.daemon.health_timeout,
        )?))),
        None => Ok(None),
    }
}
