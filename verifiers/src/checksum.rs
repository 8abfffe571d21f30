//! Checksums of candidate binaries: the platform entry's `checksum` (hex, either case) with its
//! `checksumAlgorithm`, compared with the digest computed while the bytes streamed in.

use nymvisor_core::model::{PlatformDetails, UpgradeInfo};
use nymvisor_core::source::UpgradeSource;
use nymvisor_core::verify::{Candidate, Digest, Refusal, Verifier};
use sha2::Digest as _;

/// Supported algorithms, by their canonical name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Sha3_256,
    Sha3_512,
}

impl Algorithm {
    /// Parses `sha256`, `sha512`, `sha3-256`, `sha3-512` (also `sha3_256`, `sha3_512`), any case.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "sha256" | "sha-256" => Some(Algorithm::Sha256),
            "sha512" | "sha-512" => Some(Algorithm::Sha512),
            "sha3-256" => Some(Algorithm::Sha3_256),
            "sha3-512" => Some(Algorithm::Sha3_512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Sha3_256 => "sha3-256",
            Algorithm::Sha3_512 => "sha3-512",
        }
    }

    /// Length of the hex digest.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 | Algorithm::Sha3_256 => 64,
            Algorithm::Sha512 | Algorithm::Sha3_512 => 128,
        }
    }

    /// A fresh streaming hasher.
    pub fn hasher(self) -> Box<dyn Digest> {
        match self {
            Algorithm::Sha256 => Box::new(Hasher(sha2::Sha256::new())),
            Algorithm::Sha512 => Box::new(Hasher(sha2::Sha512::new())),
            Algorithm::Sha3_256 => Box::new(Hasher(sha3::Sha3_256::new())),
            Algorithm::Sha3_512 => Box::new(Hasher(sha3::Sha3_512::new())),
        }
    }
}

struct Hasher<D>(D);

impl<D: sha2::Digest + Send> Digest for Hasher<D> {
    fn update(&mut self, data: &[u8]) {
        sha2::Digest::update(&mut self.0, data);
    }
    fn finish_hex(self: Box<Self>) -> String {
        hex::encode(self.0.finalize())
    }
}

/// Checks the platform entry's checksum; with `enforce`, a downloaded binary must have one.
#[derive(Debug, Clone, Copy)]
pub struct ChecksumVerifier {
    pub enforce: bool,
}

#[async_trait::async_trait]
impl Verifier for ChecksumVerifier {
    fn name(&self) -> &str {
        "checksum"
    }

    fn digests(
        &self,
        _info: &UpgradeInfo,
        platform: Option<&PlatformDetails>,
    ) -> Vec<(String, Box<dyn Digest>)> {
        // sha256 always: verifier commands and plugins get `digests.sha256` for every candidate
        // (an `add-upgrade` binary too), whatever the feed's algorithm
        let mut all = vec![("sha256".to_owned(), Algorithm::Sha256.hasher())];
        if let Some(a) = platform
            .filter(|p| !p.checksum.trim().is_empty())
            .and_then(|p| Algorithm::parse(&p.checksum_algorithm))
            .filter(|a| a.name() != "sha256")
        {
            all.push((a.name().to_owned(), a.hasher()));
        }
        all
    }

    fn verify_metadata(
        &self,
        _info: &UpgradeInfo,
        platform: &PlatformDetails,
    ) -> Result<(), Refusal> {
        usable_checksum(platform)
            .map(|_| ())
            .map_err(Refusal::never)
    }

    async fn verify(
        &self,
        c: &Candidate<'_>,
        _source: Option<&dyn UpgradeSource>,
    ) -> Result<(), Refusal> {
        self.check(c).map_err(Refusal::never)
    }
}

/// The algorithm of a platform entry's checksum, once its metadata is known to be usable: a
/// supported algorithm and a hex digest of that algorithm's length. `None`: no checksum.
pub fn usable_checksum(platform: &PlatformDetails) -> Result<Option<Algorithm>, String> {
    let expected = platform.checksum.trim();
    if expected.is_empty() {
        return Ok(None);
    }
    let Some(algo) = Algorithm::parse(&platform.checksum_algorithm) else {
        return Err(if platform.checksum_algorithm.trim().is_empty() {
            format!(
                "the checksum of {} has no checksumAlgorithm (supported: sha256, sha512, sha3-256, sha3-512)",
                platform.url
            )
        } else {
            format!(
                "unsupported checksum algorithm {:?} for {} (supported: sha256, sha512, sha3-256, sha3-512)",
                platform.checksum_algorithm, platform.url
            )
        });
    };
    if expected.len() != algo.hex_len() || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "the {} checksum {expected:?} for {} is not {} hex digits",
            algo.name(),
            platform.url,
            algo.hex_len()
        ));
    }
    Ok(Some(algo))
}

impl ChecksumVerifier {
    fn check(&self, c: &Candidate<'_>) -> Result<(), String> {
        let Some(platform) = c.platform else {
            // a binary the operator placed with `add-upgrade`: there is nothing to compare with
            return Ok(());
        };
        let expected = platform.checksum.trim();
        if expected.is_empty() {
            return if self.enforce && c.downloaded {
                Err(
                    "the download has no checksum and DAEMON_ENFORCE_DOWNLOAD_CHECKSUM is on"
                        .into(),
                )
            } else {
                Ok(())
            };
        }
        let Some(algo) = usable_checksum(platform)? else {
            return Ok(());
        };
        let Some(actual) = c.digests.get(algo.name()) else {
            return Err(format!("no {} digest was computed", algo.name()));
        };
        if !actual.eq_ignore_ascii_case(expected) {
            // name what was hashed: the download, or the file found in place
            let what = if c.downloaded {
                platform.url.clone()
            } else {
                format!("{} (found in place, not downloaded)", c.path.display())
            };
            return Err(format!(
                "{} of {what} is {actual}, but the upgrade says {}",
                algo.name(),
                expected.to_ascii_lowercase()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(algo: Algorithm, data: &[u8]) -> String {
        let mut h = algo.hasher();
        h.update(data);
        h.finish_hex()
    }

    #[test]
    fn known_digests() {
        // digests of "abc" from FIPS 180-4 / FIPS 202 test vectors
        assert_eq!(
            digest(Algorithm::Sha256, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(digest(Algorithm::Sha512, b"abc").starts_with("ddaf35a193617aba"));
        assert_eq!(
            digest(Algorithm::Sha3_256, b"abc"),
            "3a985da74fe225b2045c172d6bd390bd855f086e3e9d525b46bfe24511431532"
        );
        assert!(digest(Algorithm::Sha3_512, b"abc").starts_with("b751850b1a57168a"));
    }

    #[test]
    fn names() {
        assert_eq!(Algorithm::parse("SHA3_256"), Some(Algorithm::Sha3_256));
        assert_eq!(Algorithm::parse("sha3-512"), Some(Algorithm::Sha3_512));
        assert_eq!(Algorithm::parse("md5"), None);
    }

    #[test]
    fn metadata_is_checked_before_any_download() {
        let p = |sum: &str, algo: &str| PlatformDetails {
            checksum: sum.to_owned(),
            checksum_algorithm: algo.to_owned(),
            url: "https://x/nym-node".to_owned(),
            signature_url: None,
        };
        let sha256 = "a".repeat(64);
        assert_eq!(
            usable_checksum(&p(&sha256, "sha256")).unwrap(),
            Some(Algorithm::Sha256)
        );
        assert_eq!(usable_checksum(&p("", "")).unwrap(), None);
        assert!(
            usable_checksum(&p(&sha256, "md5"))
                .unwrap_err()
                .contains("md5")
        );
        assert!(
            usable_checksum(&p(&sha256, ""))
                .unwrap_err()
                .contains("no checksumAlgorithm")
        );
        assert!(
            usable_checksum(&p(&sha256, "sha512"))
                .unwrap_err()
                .contains("128 hex")
        );
        assert!(usable_checksum(&p(&"g".repeat(64), "sha256")).is_err());
    }

    #[tokio::test]
    async fn compares_case_insensitively_and_refuses_mismatch() {
        let info: UpgradeInfo = serde_json::from_str(
            r#"{"name":"x","version":"1.0.0","upgradeTime":"2026-01-01T00:00:00Z",
                "platforms":{"any":{"checksum":"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD","checksumAlgorithm":"sha256","url":"u"}}}"#,
        )
        .unwrap();
        let platform = info.platforms.get("any");
        let v = ChecksumVerifier { enforce: true };
        let mut digests = std::collections::BTreeMap::new();
        digests.insert("sha256".to_owned(), digest(Algorithm::Sha256, b"abc"));
        let c = Candidate {
            daemon: "nym-node",
            info: &info,
            platform,
            path: std::path::Path::new("/x"),
            digests: &digests,
            downloaded: true,
        };
        assert!(v.verify(&c, None).await.is_ok());
        let mut wrong = digests.clone();
        wrong.insert("sha256".to_owned(), digest(Algorithm::Sha256, b"abd"));
        let c = Candidate {
            digests: &wrong,
            ..c
        };
        assert!(
            v.verify(&c, None)
                .await
                .unwrap_err()
                .reason
                .contains("but the upgrade says")
        );
    }
}
