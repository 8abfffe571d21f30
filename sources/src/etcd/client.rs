//! A small etcd v3 client over the JSON gateway every etcd since 3.4 serves next to gRPC (3.3 had it under `/v3beta`)
//! (`POST /v3/kv/range`, `/v3/kv/txn`, `/v3/auth/authenticate`): the HTTP client nymvisor
//! already has, no gRPC stack (README "Choices": footprint). Keys and values travel as base64,
//! 64-bit numbers as strings.
//!
//! Each call tries the endpoints in turn, starting with the last one that answered, so one
//! member down costs one refused connection. A call without quorum times out on the member
//! that is left and fails; the caller retries later.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use nymvisor_core::config::FleetConfig;
use nymvisor_core::env::Env;
use nymvisor_core::fleet::FleetError;
use serde_json::{Value, json};

/// Longest wait for one endpoint's answer: etcd itself gives up on a request without quorum
/// after about 7 s; a member that is left is not waited on longer than this.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest answer read (a group's records).
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// See the module docs.
#[derive(Debug)]
pub struct EtcdClient {
    endpoints: Vec<String>,
    http: reqwest::Client,
    /// User and password (read from the configured variable of the resolved environment).
    login: Option<(String, String)>,
    token: Mutex<Option<String>>,
    /// The endpoint that answered last.
    preferred: AtomicUsize,
}

/// One key and value of a range.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    /// The revision of its last change.
    pub mod_revision: i64,
}

impl EtcdClient {
    /// A client for `[fleet]` as resolved; `env` is the resolved environment (the password's
    /// variable is read from it).
    pub fn from_config(f: &FleetConfig, env: &Env) -> Result<EtcdClient, FleetError> {
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("nymvisor/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &f.etcd_ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                FleetError::new(format!(
                    "cannot read the etcd CA file {} (NYMVISOR_FLEET_ETCD_CA_FILE): {e}",
                    ca.display()
                ))
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                FleetError::new(format!(
                    "the etcd CA file {} holds no PEM certificate: {e}",
                    ca.display()
                ))
            })?;
            // the cluster's own CA only: a public CA's certificate for the same name is refused
            b = b.tls_certs_only(certs);
        }
        if let (Some(cert), Some(key)) = (&f.etcd_cert_file, &f.etcd_key_file) {
            let mut pem = Vec::new();
            for p in [cert, key] {
                let mut bytes = std::fs::read(p).map_err(|e| {
                    FleetError::new(format!(
                        "cannot read the etcd client certificate or key {}: {e}",
                        p.display()
                    ))
                })?;
                pem.append(&mut bytes);
                pem.push(b'\n');
            }
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                FleetError::new(format!(
                    "the etcd client certificate {} and key {} do not make an identity: {e}",
                    cert.display(),
                    key.display()
                ))
            })?;
            b = b.identity(id);
        }
        let http = b
            .build()
            .map_err(|e| FleetError::new(format!("cannot set up the etcd client: {e}")))?;
        let login = match &f.etcd_user {
            None => None,
            Some(user) => {
                let var = &f.etcd_password_env;
                let password = env.get(var).unwrap_or_default();
                if password.is_empty() {
                    return Err(FleetError::new(format!(
                        "NYMVISOR_FLEET_ETCD_USER is {user:?} but {var} (NYMVISOR_FLEET_ETCD_PASSWORD_ENV) is not set in nymvisor's environment: set it (e.g. in the service's environment file) to the etcd user's password"
                    )));
                }
                Some((user.clone(), password.to_owned()))
            }
        };
        Ok(EtcdClient {
            endpoints: f
                .etcd_endpoints
                .iter()
                .map(|e| e.trim_end_matches('/').to_owned())
                .collect(),
            http,
            login,
            token: Mutex::new(None),
            preferred: AtomicUsize::new(0),
        })
    }

    /// The login token and the endpoint that answered last, for the next job.
    pub fn session(&self) -> Value {
        let token = self.token.lock().ok().and_then(|t| t.clone());
        json!({ "token": token, "preferred": self.preferred.load(Ordering::Relaxed) })
    }

    /// Starts from a [`EtcdClient::session`] of the same configuration (an expired token is
    /// noticed by etcd and replaced by a login).
    pub fn resume(&self, session: &Value) {
        if let Some(t) = session["token"].as_str().filter(|t| !t.is_empty())
            && self.login.is_some()
            && let Ok(mut token) = self.token.lock()
        {
            *token = Some(t.to_owned());
        }
        if let Some(p) = session["preferred"].as_u64() {
            self.preferred.store(p as usize, Ordering::Relaxed);
        }
    }

    /// The endpoints, for messages.
    pub fn endpoints(&self) -> String {
        self.endpoints.join(", ")
    }

    /// Every key under `prefix`, and the store's revision of the read.
    pub async fn range_prefix(&self, prefix: &[u8]) -> Result<(i64, Vec<Kv>), FleetError> {
        let answer = self
            .call(
                "kv/range",
                json!({ "key": B64.encode(prefix), "range_end": B64.encode(prefix_end(prefix)) }),
            )
            .await?;
        let revision = revision(&answer);
        let mut kvs = Vec::new();
        for kv in answer["kvs"].as_array().into_iter().flatten() {
            kvs.push(Kv {
                key: decode(&kv["key"])?,
                value: decode(&kv["value"])?,
                mod_revision: number(&kv["mod_revision"]),
            });
        }
        Ok((revision, kvs))
    }

    /// One transaction: `success` if every `compare` holds (nothing otherwise). Returns whether
    /// they held.
    pub async fn txn(&self, compare: Vec<Value>, success: Vec<Value>) -> Result<bool, FleetError> {
        let answer = self
            .call("kv/txn", json!({ "compare": compare, "success": success }))
            .await?;
        Ok(answer["succeeded"].as_bool().unwrap_or(false))
    }

    /// Calls `path` on the first endpoint that answers (authenticating when a user is set).
    async fn call(&self, path: &str, body: Value) -> Result<Value, FleetError> {
        let n = self.endpoints.len();
        let first = self.preferred.load(Ordering::Relaxed) % n.max(1);
        let mut failures = Vec::new();
        for i in 0..n {
            let at = (first + i) % n;
            let endpoint = &self.endpoints[at];
            match self.call_one(endpoint, path, &body).await {
                Ok(v) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return Ok(v);
                }
                Err(Failure::Final(e)) => return Err(FleetError::new(format!("{endpoint}: {e}"))),
                Err(Failure::Next(e)) => failures.push(format!("{endpoint}: {e}")),
            }
        }
        Err(FleetError::new(format!(
            "etcd did not answer ({}); check that a majority of the etcd cluster runs and that NYMVISOR_FLEET_ETCD_ENDPOINTS lists its client URLs",
            failures.join("; ")
        )))
    }

    async fn call_one(&self, endpoint: &str, path: &str, body: &Value) -> Result<Value, Failure> {
        let mut retried_auth = false;
        loop {
            let token = match &self.login {
                Some(_) => Some(self.token(endpoint).await?),
                None => None,
            };
            let answer = self.post(endpoint, path, body, token.as_deref()).await?;
            match answer {
                Answer::Ok(v) => return Ok(v),
                Answer::Error(code, message) if is_auth(code, &message) && !retried_auth => {
                    // an expired token (etcd's simple tokens live 5 min): log in again, once
                    retried_auth = true;
                    if let Ok(mut t) = self.token.lock() {
                        *t = None;
                    }
                }
                Answer::Error(code, message) if is_auth(code, &message) => {
                    return Err(Failure::Final(format!(
                        "etcd refused nymvisor's credentials: {message} (check NYMVISOR_FLEET_ETCD_USER, its password and its role's permissions on the group's keys)"
                    )));
                }
                Answer::Error(_, message) => return Err(Failure::Next(message)),
            }
        }
    }

    /// A token for the configured user, logging in if there is none yet.
    async fn token(&self, endpoint: &str) -> Result<String, Failure> {
        if let Some(t) = self.token.lock().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        let Some((user, password)) = &self.login else {
            return Err(Failure::Final("no etcd user is set".into()));
        };
        let body = json!({ "name": user, "password": password });
        match self
            .post(endpoint, "auth/authenticate", &body, None)
            .await?
        {
            Answer::Ok(v) => {
                let token = v["token"].as_str().unwrap_or_default().to_owned();
                if token.is_empty() {
                    return Err(Failure::Final(
                        "etcd gave no token for the user (is authentication enabled on the cluster? `etcdctl auth enable`)".into(),
                    ));
                }
                if let Ok(mut t) = self.token.lock() {
                    *t = Some(token.clone());
                }
                Ok(token)
            }
            Answer::Error(code, message) if is_auth(code, &message) => {
                Err(Failure::Final(format!(
                    "etcd refused the login of user {user:?}: {message} (check the password in the variable NYMVISOR_FLEET_ETCD_PASSWORD_ENV names)"
                )))
            }
            Answer::Error(_, message) => Err(Failure::Next(message)),
        }
    }

    async fn post(
        &self,
        endpoint: &str,
        path: &str,
        body: &Value,
        token: Option<&str>,
    ) -> Result<Answer, Failure> {
        let url = format!("{endpoint}/v3/{path}");
        let mut req = self
            .http
            .post(&url)
            .header("Content-Type", "application/json")
            .body(body.to_string());
        if let Some(t) = token {
            req = req.header("Authorization", t);
        }
        let resp = req.send().await.map_err(|e| Failure::Next(describe(&e)))?;
        let status = resp.status();
        // read in chunks up to the cap: a runaway answer is never held whole
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Failure::Next(describe(&e)))?
        {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(Failure::Final(format!(
                    "the answer is larger than {MAX_ANSWER} bytes (the group's records should be far smaller: `nymvisor fleet status` shows them)"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if String::from_utf8_lossy(&bytes).contains("CommonName of client") => {
                return Err(Failure::Final(
                    "etcd refuses a client certificate with a Common Name on its JSON gateway while authentication is on: issue nymvisor's client certificate without a CN (e.g. `-subj /O=nymvisor`; the etcd user is its identity), or leave NYMVISOR_FLEET_ETCD_CERT_FILE unset and rely on the user and password".into(),
                ));
            }
            Err(_) if status == reqwest::StatusCode::NOT_FOUND => {
                return Err(Failure::Next(
                    "no etcd v3 JSON gateway here (404): is this an etcd 3.4 or later client URL?"
                        .into(),
                ));
            }
            Err(e) => {
                return Err(Failure::Next(format!(
                    "the answer ({status}) is not JSON: {e}"
                )));
            }
        };
        if let Some(message) = v["message"].as_str().or(v["error"].as_str()) {
            let code = v["code"].as_i64().unwrap_or(0);
            return Ok(Answer::Error(code, message.to_owned()));
        }
        if !status.is_success() {
            return Ok(Answer::Error(0, format!("HTTP {status}")));
        }
        Ok(Answer::Ok(v))
    }
}

enum Answer {
    Ok(Value),
    /// etcd's gRPC status code and message.
    Error(i64, String),
}

/// Why one endpoint did not do: try the next (unreachable, no leader) or stop (credentials).
enum Failure {
    Next(String),
    Final(String),
}

/// gRPC `UNAUTHENTICATED` (16) and `PERMISSION_DENIED` (7) and etcd's token messages.
fn is_auth(code: i64, message: &str) -> bool {
    code == 16
        || code == 7
        || message.contains("invalid auth token")
        || message.contains("user name is empty")
        || message.contains("authentication failed")
        || message.contains("permission denied")
}

/// A reqwest error in a few words: what went wrong and its deepest cause (a refused
/// connection, a TLS failure), not the whole chain.
fn describe(e: &reqwest::Error) -> String {
    let mut deepest: Option<String> = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        deepest = Some(s.to_string());
        source = s.source();
    }
    let what = if e.is_timeout() {
        "no answer in time"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "the request failed"
    };
    match deepest {
        Some(cause) => format!("{what}: {cause}"),
        None => format!("{what}: {e}"),
    }
}

/// The first key after every key that starts with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // every byte 0xff: to the end of the key space
    vec![0]
}

fn revision(answer: &Value) -> i64 {
    number(&answer["header"]["revision"])
}

/// A 64-bit number, which the gateway writes as a string.
pub fn number(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_i64())
        .unwrap_or(0)
}

fn decode(v: &Value) -> Result<Vec<u8>, FleetError> {
    B64.decode(v.as_str().unwrap_or_default())
        .map_err(|e| FleetError::new(format!("etcd sent a key or value that is not base64: {e}")))
}

/// Base64, as the gateway wants keys and values.
pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_ends_after_its_last_key() {
        assert_eq!(prefix_end(b"/nymvisor/fleet/g/"), b"/nymvisor/fleet/g0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
    }

    #[test]
    fn numbers_come_as_strings() {
        assert_eq!(number(&json!("42")), 42);
        assert_eq!(number(&json!(7)), 7);
        assert_eq!(number(&Value::Null), 0);
    }
}
