//! Minisign signatures of downloaded binaries, against pinned public keys
//! (`DAEMON_MINISIGN_PUBLIC_KEYS`).
//!
//! The signature is fetched from the platform entry's `signatureUrl`, else `<binary url>.minisig`
//! (64 KiB cap). Only prehashed (current minisign) signatures are accepted. The trusted comment,
//! when it names the file (`file:<name>`) or the version (`version:<v>`), must name this binary
//! and this version, so a valid signature of another release cannot be replayed.
//!
//! Binaries placed by the operator with `add-upgrade` are not signature-checked: the operator
//! vouches for them. The signature check reads the downloaded file once more, in chunks, from
//! the page cache (minisign's prehash cannot be fed from the download stream through this API).

use minisign_verify::{PublicKey, Signature};
use nymvisor_core::source::{SourcedUpgrade, UpgradeSource};
use nymvisor_core::verify::{Candidate, Refusal, Verifier};

use crate::error::Error;
use tokio::io::AsyncReadExt;

pub use nymvisor_core::source::MAX_FEED_SIGNATURES;

/// Largest signature file fetched.
pub const MAX_SIGNATURE: u64 = 64 * 1024;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct MinisignVerifier {
    keys: Vec<(String, PublicKey)>,
    required: bool,
    /// How many distinct trusted keys must have signed a feed, when signatures are required.
    feed_threshold: usize,
}

impl MinisignVerifier {
    /// Parses the base64 public keys; an unreadable key is an error that quotes it.
    pub fn new(keys: &[String], required: bool) -> Result<MinisignVerifier, Error> {
        let keys = keys
            .iter()
            .map(|k| {
                PublicKey::from_base64(k.trim())
                    .map(|pk| (k.trim().to_owned(), pk))
                    .map_err(|e| Error::Key {
                        key: k.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if required && keys.is_empty() {
            return Err(Error::NoKeys);
        }
        Ok(MinisignVerifier {
            keys,
            required,
            feed_threshold: 1,
        })
    }

    /// With `threshold` distinct trusted keys required on a feed (signatures required); the
    /// feed's signatures are `<feed>.minisig`, `<feed>.minisig.1`, `<feed>.minisig.2`, …
    pub fn with_feed_threshold(mut self, threshold: u32) -> MinisignVerifier {
        self.feed_threshold = (threshold as usize).max(1);
        self
    }
}

/// One of a feed's signatures.
enum FeedSig<'a> {
    /// Valid, by this trusted key.
    Valid(&'a str),
    /// Not offered: it could not be fetched (why).
    Absent(String),
}

/// The URL of a feed's `i`-th signature: `<feed>.minisig`, then `<feed>.minisig.1`, ….
fn feed_signature_url(document_url: &str, i: usize) -> String {
    format!(
        "{document_url}{}",
        nymvisor_core::source::feed_signature_suffix(i)
    )
}

/// A public key's id, as `minisign` prints it (16 hex digits), from its base64 form.
fn key_id(base64_key: &str) -> String {
    decode_b64(base64_key)
        .filter(|b| b.len() >= 10)
        .map(|b| b[2..10].iter().rev().map(|x| format!("{x:02X}")).collect())
        .unwrap_or_else(|| "?".to_owned())
}

/// The key id a signature names (its second line is base64 of algorithm, key id, signature).
fn signature_key_id(text: &str) -> String {
    text.lines()
        .find(|l| !l.starts_with("untrusted comment:") && !l.trim().is_empty())
        .map(key_id)
        .unwrap_or_else(|| "?".to_owned())
}

/// Standard base64.
fn decode_b64(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()
}

/// The last path segment of a URL (without query).
fn file_name(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path)
}

/// Checks the `file:` and `version:` fields of a trusted comment, when present.
pub fn check_trusted_comment(comment: &str, file: &str, version: &str) -> Result<(), String> {
    for field in comment.split(['\t', ' ']) {
        if let Some(f) = field.strip_prefix("file:")
            && f != file
        {
            return Err(format!("the signature is for the file {f:?}, not {file:?}"));
        }
        if let Some(v) = field.strip_prefix("version:")
            && v.trim_start_matches('v') != version.trim_start_matches('v')
        {
            return Err(format!("the signature is for version {v}, not {version}"));
        }
    }
    Ok(())
}

#[async_trait::async_trait]
impl Verifier for MinisignVerifier {
    fn name(&self) -> &str {
        "signature"
    }

    /// The feed document's own signatures (`<document url>.minisig`, `.minisig.1`, …). With
    /// signatures required and a source whose documents are signed feeds (HTTP, local mirror), a
    /// feed without valid signatures from `DAEMON_FEED_SIGNATURE_THRESHOLD` distinct trusted keys
    /// — missing, too large, unreachable, malformed, from another key, of other bytes — is
    /// refused (retried at the next poll) and nothing from it is used. Otherwise a signature that
    /// is offered must be valid.
    async fn verify_document(
        &self,
        found: &SourcedUpgrade,
        source: &dyn UpgradeSource,
    ) -> Result<(), Refusal> {
        if self.keys.is_empty() {
            return Ok(());
        }
        let must = self.required && source.signs_documents();
        if !must {
            // not offered: the binaries' own signatures still decide
            return self.feed_signature(found, source, 0).await.map(|_| ());
        }
        // the extra signatures are looked for only as far as needed, and up to the first one
        // that cannot be fetched; not limited by the number of keys: a node trusting only the
        // new key must find it after the old key's signature (or a co-signer it does not trust)
        let mut signers: Vec<&str> = Vec::new();
        let mut problems = Vec::new();
        for i in 0..MAX_FEED_SIGNATURES {
            match self.feed_signature(found, source, i).await {
                Ok(FeedSig::Valid(key)) => {
                    if !signers.contains(&key) {
                        signers.push(key);
                    }
                    if signers.len() >= self.feed_threshold {
                        return Ok(());
                    }
                }
                // no more signature files
                Ok(FeedSig::Absent(_)) if i > 0 => break,
                Ok(FeedSig::Absent(e)) => problems.push(e),
                Err(r) => problems.push(r.reason),
            }
        }
        let why = if problems.is_empty() {
            String::new()
        } else {
            format!(" ({})", problems.join("; "))
        };
        if self.feed_threshold == 1 && signers.is_empty() {
            return Err(Refusal::transient(format!(
                "the feed has no valid signature{why}; signatures are required, so nothing from it is used"
            )));
        }
        Err(Refusal::transient(format!(
            "the feed is signed by {} distinct trusted key(s), {} are required (DAEMON_FEED_SIGNATURE_THRESHOLD){why}; nothing from it is used",
            signers.len(),
            self.feed_threshold
        )))
    }

    async fn verify(
        &self,
        c: &Candidate<'_>,
        source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Refusal> {
        self.check(c, source).await
    }
}

impl MinisignVerifier {
    /// The feed's `i`-th signature; `Err`: offered but not valid for any configured key.
    async fn feed_signature(
        &self,
        found: &SourcedUpgrade,
        source: &dyn UpgradeSource,
        i: usize,
    ) -> Result<FeedSig<'_>, Refusal> {
        let sig_url = feed_signature_url(&found.document_url, i);
        let bytes = match source.fetch_small(&sig_url, MAX_SIGNATURE).await {
            Ok(b) => b,
            Err(e) => return Ok(FeedSig::Absent(format!("{sig_url}: {e}"))),
        };
        let text = String::from_utf8(bytes).map_err(|_| {
            Refusal::never(format!("{sig_url} is not a minisign signature (not text)"))
        })?;
        let sig = Signature::decode(&text)
            .map_err(|e| Refusal::never(format!("{sig_url} is not a minisign signature: {e}")))?;
        match self
            .keys
            .iter()
            .find(|(_, key)| key.verify(&found.document, &sig, false).is_ok())
        {
            Some((text_key, _)) => {
                tracing::info!(
                    "the feed {} is signed by the trusted key {} ({sig_url})",
                    found.document_url,
                    key_id(text_key)
                );
                Ok(FeedSig::Valid(text_key.as_str()))
            }
            None => Err(Refusal::never(format!(
                "the feed document's signature {sig_url} is not valid for any configured key (signed by key id {})",
                signature_key_id(&text)
            ))),
        }
    }

    /// A signature that could not be fetched is a transient refusal; anything wrong with it,
    /// a permanent one.
    async fn check(
        &self,
        c: &Candidate<'_>,
        source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Refusal> {
        let (Some(platform), true) = (c.platform, c.downloaded) else {
            return Ok(());
        };
        let sig_url = platform
            .signature_url
            .clone()
            .unwrap_or_else(|| format!("{}.minisig", platform.url));
        let fetched = match source {
            Some(s) => s
                .fetch_small(&sig_url, MAX_SIGNATURE)
                .await
                .map_err(|e| e.to_string()),
            None => Err("no source to fetch it from".to_owned()),
        };
        let text = match fetched {
            Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
                Refusal::never(format!("{sig_url} is not a minisign signature (not text)"))
            })?,
            Err(e) if self.required => {
                return Err(Refusal::transient(format!(
                    "no signature at {sig_url}: {e}"
                )));
            }
            Err(_) => return Ok(()),
        };
        let sig = Signature::decode(&text)
            .map_err(|e| Refusal::never(format!("{sig_url} is not a minisign signature: {e}")))?;
        check_trusted_comment(
            sig.trusted_comment(),
            file_name(&platform.url),
            &c.info.version,
        )
        .map_err(Refusal::never)?;
        let mut last_error = "no configured public key matches the signature's key id".to_owned();
        for (text_key, key) in &self.keys {
            let mut stream = match key.verify_stream(&sig) {
                Ok(s) => s,
                Err(minisign_verify::Error::UnexpectedKeyId) => continue,
                Err(e) => {
                    last_error = format!("signature from key {text_key} cannot be checked: {e}");
                    continue;
                }
            };
            let unreadable = |e: std::io::Error| {
                Refusal::transient(format!("cannot read {}: {e}", c.path.display()))
            };
            let mut file = tokio::fs::File::open(c.path).await.map_err(unreadable)?;
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let n = file.read(&mut buf).await.map_err(unreadable)?;
                if n == 0 {
                    break;
                }
                stream.update(&buf[..n]);
            }
            return stream
                .finalize()
                .map(|()| {
                    tracing::info!(
                        upgrade = %c.info.name,
                        "the binary {} is signed by the trusted key {} ({sig_url})",
                        c.path.display(),
                        key_id(text_key)
                    );
                })
                .map_err(|e| {
                    Refusal::never(format!(
                        "the signature at {sig_url} does not match the binary ({e})"
                    ))
                });
        }
        Err(Refusal::never(last_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_comment_fields() {
        assert!(check_trusted_comment("timestamp:1\tfile:nym-node", "nym-node", "1.2.0").is_ok());
        assert!(check_trusted_comment("timestamp:1", "nym-node", "1.2.0").is_ok());
        assert!(check_trusted_comment("file:nym-api", "nym-node", "1.2.0").is_err());
        assert!(check_trusted_comment("file:nym-node version:1.1.0", "nym-node", "1.2.0").is_err());
        assert!(check_trusted_comment("version:v1.2.0", "nym-node", "1.2.0").is_ok());
        assert_eq!(file_name("https://x/a/b/nym-node?x=1"), "nym-node");
    }

    #[test]
    fn keys_are_checked_when_loaded() {
        assert!(MinisignVerifier::new(&["not a key".into()], true).is_err());
        assert!(MinisignVerifier::new(&[], true).is_err());
        assert!(MinisignVerifier::new(&[], false).is_ok());
    }
}
