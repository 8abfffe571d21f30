//! The operator's minisign secret key, for `nymvisor mirror sync`
//! ([`nymvisor_core::mirror::Signer`]).
//!
//! Never interactive: an encrypted key needs its password from an environment variable (a
//! timer has no terminal), and a key that is encrypted without one is an error saying so.
//! Signatures are prehashed (what current minisign makes and `run` accepts).

use std::path::Path;

use minisign::{PublicKey, SecretKey, SecretKeyBox};

use crate::error::Error;

/// What [`unencrypted`] says of an encrypted key (the crate's words).
const ENCRYPTED: &str = "Key might be encrypted";

/// Largest secret key file read (one is about 400 bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// One secret key, decrypted.
pub struct MinisignSigner {
    key: SecretKey,
    public: Option<PublicKey>,
    id: String,
}

impl std::fmt::Debug for MinisignSigner {
    // never the key material
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MinisignSigner({})", self.id)
    }
}

impl MinisignSigner {
    /// Reads the secret key file `path` (as `minisign -G` writes it); `password` decrypts an
    /// encrypted one.
    pub fn from_file(path: &Path, password: Option<&str>) -> Result<MinisignSigner, Error> {
        let bad = |reason: String| Error::SecretKey {
            path: path.to_owned(),
            reason,
        };
        let bytes = nymvisor_core::fsutil::read_capped(path, MAX_KEY_FILE)
            .map_err(|e| bad(e.to_string()))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| bad("is not a minisign secret key (not text)".into()))?;
        if !text.starts_with("untrusted comment:") {
            return Err(bad(
                "is not a minisign secret key (it starts with `untrusted comment:`, as `minisign -G` writes it)".into(),
            ));
        }
        // the password is for encrypted keys only: one may sign with both kinds at once
        let key = match (unencrypted(&text), password) {
            (Err(e), Some(p)) if e.to_string() == ENCRYPTED => SecretKeyBox::from_string(&text)
                .and_then(|b| b.into_secret_key(Some(p.to_owned()))),
            (result, _) => result,
        }
        .map_err(|e| {
            let e = e.to_string();
            bad(match (password, e.as_str()) {
                (None, ENCRYPTED) => "the key is encrypted: name the environment variable that holds its password with --sign-key-password-env".to_owned(),
                (Some(_), "Wrong password for that key") => "wrong password for this key (from --sign-key-password-env)".to_owned(),
                _ => format!("cannot be read: {e}"),
            })
        })?;
        let public = PublicKey::from_secret_key(&key).ok();
        let id = key
            .keynum()
            .iter()
            .rev()
            .map(|b| format!("{b:02X}"))
            .collect();
        Ok(MinisignSigner { key, public, id })
    }
}

/// An unencrypted key (`minisign -G -W`). Read field by field: minisign 0.11 writes such keys
/// with an all-zero checksum, which the crate's own reader takes for a corrupted key.
fn unencrypted(text: &str) -> minisign::Result<SecretKey> {
    use base64::Engine;
    let line = text.lines().nth(1).unwrap_or_default().trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|e| minisign::PError::new(minisign::ErrorKind::Io, e))?;
    let key = SecretKey::from_bytes(&bytes)?;
    if key.is_encrypted() {
        return Err(minisign::PError::new(minisign::ErrorKind::Io, ENCRYPTED));
    }
    Ok(key)
}

impl nymvisor_core::mirror::Signer for MinisignSigner {
    fn key_id(&self) -> String {
        self.id.clone()
    }

    fn sign(&self, data: &mut dyn std::io::Read, trusted_comment: &str) -> Result<String, String> {
        let untrusted = format!("signature from nymvisor mirror sync, key {}", self.id);
        minisign::sign(
            self.public.as_ref(),
            &self.key,
            data,
            Some(trusted_comment),
            Some(&untrusted),
        )
        .map(|b| b.to_string())
        .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nymvisor_core::mirror::Signer;

    fn write_key(dir: &Path, text: &str) -> std::path::PathBuf {
        let p = dir.join("key");
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn signs_what_the_verifier_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let text = kp.sk.to_box(None).unwrap().to_string();
        let signer = MinisignSigner::from_file(&write_key(dir.path(), &text), None).unwrap();
        let pk = minisign_verify::PublicKey::from_base64(&kp.pk.to_base64()).unwrap();
        let sig = signer
            .sign(&mut &b"feed"[..], "timestamp:1\tfile:x")
            .unwrap();
        let sig = minisign_verify::Signature::decode(&sig).unwrap();
        assert!(pk.verify(b"feed", &sig, false).is_ok(), "prehashed, valid");
        assert_eq!(sig.trusted_comment(), "timestamp:1\tfile:x");
        assert!(pk.verify(b"other", &sig, false).is_err());
        assert_eq!(signer.key_id().len(), 16);
        assert!(!format!("{signer:?}").contains(&kp.sk.to_box(None).unwrap().to_string()));
    }

    #[test]
    fn unusable_keys_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let kp = minisign::KeyPair::generate_unencrypted_keypair().unwrap();
        let public = write_key(dir.path(), &kp.pk.to_box().unwrap().to_string());
        let e = MinisignSigner::from_file(&public, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot be read") || e.contains("not a minisign"),
            "{e}"
        );
        let junk = write_key(dir.path(), "hello");
        let e = MinisignSigner::from_file(&junk, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a minisign secret key"), "{e}");
        // a password is for encrypted keys; an unencrypted key next to them needs none
        let plain = write_key(dir.path(), &kp.sk.to_box(None).unwrap().to_string());
        assert!(MinisignSigner::from_file(&plain, Some("pw")).is_ok());
        let e = MinisignSigner::from_file(&dir.path().join("missing"), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
