//! The daemon's health, as its own endpoint reports it: the [`HealthProbe`] trait (the HTTP
//! implementation lives in `nymvisor-sources`, so this crate has no HTTP stack).
//!
//! Healthy means a 2xx answer and, when the body is JSON with a `status` field, `"up"`.

use std::fmt::Debug;

/// One answer of the probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub healthy: bool,
    /// The answer in words, for logs and `status` (`HTTP 200`, `HTTP 503: …`, `timed out`).
    pub answer: String,
}

/// The build a new version must report to be confirmed (with a build-information URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub version: String,
    pub commit_sha: Option<String>,
}

/// Asks the daemon whether it is healthy.
///
/// `probe` may take as long as the configured health timeout; it is cancel-safe.
#[async_trait::async_trait]
pub trait HealthProbe: Debug + Send + Sync {
    /// What is probed (the URL), for logs.
    fn describe(&self) -> String;

    /// One probe. `expect`: while a new version awaits confirmation, the build it must report
    /// (where the probe can ask, else ignored).
    async fn probe(&self, expect: Option<&Expected>) -> Health;
}

/// Judges a build-information answer against `expect`: healthy when it reports that
/// `build_version` and, where both have one, that `commit_sha`.
pub fn judge_build(status: u16, body: &[u8], expect: &Expected) -> Health {
    let unhealthy = |answer: String| Health {
        healthy: false,
        answer,
    };
    if !(200..300).contains(&status) {
        return unhealthy(format!("build information: HTTP {status}"));
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return unhealthy("build information: not JSON".into());
    };
    let field = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_owned);
    let Some(version) = field("build_version") else {
        return unhealthy("build information: no build_version".into());
    };
    if version != expect.version {
        return unhealthy(format!(
            "the daemon reports version {version}, not {}",
            expect.version
        ));
    }
    if let (Some(want), Some(have)) = (&expect.commit_sha, field("commit_sha"))
        && *want != have
    {
        return unhealthy(format!("the daemon reports commit {have}, not {want}"));
    }
    Health {
        healthy: true,
        answer: format!("reports {version}"),
    }
}

/// Judges an answer: healthy when the status is 2xx and a JSON body's `status`, if it has one,
/// is `up`.
pub fn judge(status: u16, body: &[u8]) -> Health {
    let text = String::from_utf8_lossy(body);
    let short: String = text.trim().chars().take(200).collect();
    let json_status = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_owned));
    let ok_status = (200..300).contains(&status);
    let healthy = ok_status
        && json_status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("up"));
    let answer = match (json_status, short.is_empty()) {
        (Some(s), _) => format!("HTTP {status}, status {s:?}"),
        (None, true) => format!("HTTP {status}"),
        (None, false) if ok_status => format!("HTTP {status}"),
        (None, false) => format!("HTTP {status}: {short}"),
    };
    Health { healthy, answer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert!(judge(200, b"").healthy);
        assert!(judge(204, b"ok").healthy);
        assert!(judge(200, br#"{"status":"up","uptime":3}"#).healthy);
        assert!(judge(200, br#"{"status":"UP"}"#).healthy);
        let down = judge(200, br#"{"status":"down"}"#);
        assert!(!down.healthy);
        assert_eq!(down.answer, r#"HTTP 200, status "down""#);
        let err = judge(503, b"overloaded");
        assert!(!err.healthy);
        assert_eq!(err.answer, "HTTP 503: overloaded");
        assert!(
            judge(200, br#"{"other":1}"#).healthy,
            "no status field: 2xx is enough"
        );
    }
}
