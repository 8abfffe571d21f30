//! The HTTP feed: `GET <base>/<daemon>/upgrade-info.json` (or the absolute URL), with
//! conditional requests (ETag / Last-Modified) so an unchanged feed costs one `304`. Fetching
//! itself (limits, redirects, status) is [`crate::fetch::Fetcher`]'s.

use std::sync::Mutex;

use nymvisor_core::model::UpgradeInfo;
use nymvisor_core::source::{ChunkSink, SourceError, SourcedUpgrade, UpgradeSource};
use reqwest::StatusCode;
use reqwest::header::{ETAG, HeaderMap, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};

use crate::Limits;
use crate::error::Error;
use crate::fetch::Fetcher;

/// See the module docs.
#[derive(Debug)]
pub struct HttpSource {
    fetcher: Fetcher,
    url: url::Url,
    validators: Mutex<(Option<String>, Option<String>)>,
}

impl HttpSource {
    pub fn new(url: &str, limits: Limits) -> Result<HttpSource, Error> {
        let fetcher = Fetcher::new(limits)?;
        let url = fetcher
            .resolve(url, None)
            .map_err(|e| Error::Setup(format!("the feed URL: {e}")))?;
        Ok(HttpSource {
            fetcher,
            url,
            validators: Mutex::new((None, None)),
        })
    }
}

#[async_trait::async_trait]
impl UpgradeSource for HttpSource {
    fn describe(&self) -> String {
        format!("the feed {}", self.url)
    }

    fn signs_documents(&self) -> bool {
        true
    }

    async fn latest(&self) -> Result<Option<SourcedUpgrade>, SourceError> {
        let url = self.url.as_str();
        let limits = self.fetcher.limits();
        let mut headers = HeaderMap::new();
        let (etag, modified) = self
            .validators
            .lock()
            .map(|v| v.clone())
            .unwrap_or_default();
        if let Some(v) = etag.and_then(|e| e.parse().ok()) {
            headers.insert(IF_NONE_MATCH, v);
        }
        if let Some(v) = modified.and_then(|m| m.parse().ok()) {
            headers.insert(IF_MODIFIED_SINCE, v);
        }
        let answer = self
            .fetcher
            .exchange(&self.url, headers, limits.caps.document)
            .await?;
        if answer.status == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !answer.status.is_success() {
            return Err(Error::Status {
                url: url.to_owned(),
                status: answer.status.as_u16(),
                hint: String::new(),
            }
            .into());
        }
        let validators = (
            answer.header(ETAG.as_str()).map(str::to_owned),
            answer.header(LAST_MODIFIED.as_str()).map(str::to_owned),
        );
        let info: UpgradeInfo =
            serde_json::from_slice(&answer.body).map_err(|e| Error::Document {
                url: url.to_owned(),
                what: format!("not a valid upgrade-info document: {e}"),
            })?;
        if let Ok(mut v) = self.validators.lock() {
            *v = validators;
        }
        Ok(Some(SourcedUpgrade {
            info,
            document: answer.body,
            document_url: url.to_owned(),
        }))
    }

    fn forget_validators(&self) {
        if let Ok(mut v) = self.validators.lock() {
            *v = (None, None);
        }
    }

    fn save_state(&self) -> Option<serde_json::Value> {
        let v = self.validators.lock().ok()?;
        Some(serde_json::json!({ "etag": v.0, "lastModified": v.1 }))
    }

    fn load_state(&self, state: serde_json::Value) {
        let field = |k: &str| state.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if let Ok(mut v) = self.validators.lock() {
            *v = (field("etag"), field("lastModified"));
        }
    }

    async fn download(
        &self,
        url: &str,
        max_bytes: u64,
        sink: &mut dyn ChunkSink,
    ) -> Result<u64, SourceError> {
        let resolved = self.fetcher.resolve(url, Some(&self.url))?;
        Ok(self.fetcher.get(&resolved, max_bytes, sink).await?)
    }
}
