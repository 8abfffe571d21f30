//! The HTTP health probe of the daemon (`daemon.health_url`, e.g. nym-node's
//! `http://127.0.0.1:8080/api/v1/health`): a GET with the health timeout, judged by
//! [`nymvisor_core::health::judge`].

use std::time::Duration;

use nymvisor_core::health::{Expected, Health, HealthProbe, judge, judge_build};

/// Most of a health answer read.
const MAX_BODY: u64 = 64 * 1024;

/// See the module docs.
#[derive(Debug)]
pub struct HttpHealth {
    client: reqwest::Client,
    url: String,
    /// With it, a new version awaiting confirmation must also report its build here.
    build_info_url: Option<String>,
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
            build_info_url: None,
            timeout,
        })
    }

    /// Also asks `url` for the build, while a new version awaits confirmation.
    pub fn with_build_info(mut self, url: Option<String>) -> HttpHealth {
        self.build_info_url = url;
        self
    }

    /// GET `url`: the status and up to [`MAX_BODY`] of the body, or the failure in words.
    async fn get(&self, url: &str) -> Result<(u16, Vec<u8>), String> {
        let resp = match self.client.get(url).send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Err(format!(
                    "no answer within {}",
                    humantime::format_duration(self.timeout)
                ));
            }
            Err(e) if e.is_connect() => return Err("connection refused".to_owned()),
            Err(e) => return Err(format!("request failed: {e}")),
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
        Ok((status, body))
    }
}

#[async_trait::async_trait]
impl HealthProbe for HttpHealth {
    fn describe(&self) -> String {
        self.url.clone()
    }

    async fn probe(&self, expect: Option<&Expected>) -> Health {
        let failed = |answer: String| Health {
            healthy: false,
            answer,
        };
        let health = match self.get(&self.url).await {
            Ok((status, body)) => judge(status, &body),
            Err(e) => return failed(e),
        };
        // `up` proves a web server answers; the build proves it is the new one
        match (health.healthy, expect, &self.build_info_url) {
            (true, Some(expect), Some(url)) => match self.get(url).await {
                Ok((status, body)) => {
                    let build = judge_build(status, &body, expect);
                    Health {
                        healthy: build.healthy,
                        answer: format!("{}, {}", health.answer, build.answer),
                    }
                }
                Err(e) => failed(format!("{}, build information: {e}", health.answer)),
            },
            _ => health,
        }
    }
}

/// The configured probe, if a health URL is set.
pub fn from_config(
    config: &nymvisor_core::config::Config,
) -> Result<Option<std::sync::Arc<dyn HealthProbe>>, crate::Error> {
    match &config.daemon.health_url {
        Some(url) => Ok(Some(std::sync::Arc::new(
            HttpHealth::new(url, config.daemon.health_timeout)?
                .with_build_info(config.daemon.health_build_info_url.clone()),
        ))),
        None => Ok(None),
    }
}
