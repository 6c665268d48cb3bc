//! Access-key secrets at rest: sealed with AES-256-GCM under the region's
//! secrets key before they enter the principal registry, so the copy every
//! node keeps on disk holds no usable secret. The user's name and the key
//! id are the associated data: a sealed secret moved to another key or
//! user does not open.

use std::path::Path;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::ClientError;

/// The region's secrets key (32 bytes, hex in a mode-0600 file).
pub struct SecretsKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretsKey(..)")
    }
}

fn cfg(detail: String) -> ClientError {
    ClientError::Config { detail }
}

fn random(buf: &mut [u8]) -> Result<(), ClientError> {
    SystemRandom::new().fill(buf).map_err(|_| cfg("the system random source failed".into()))
}

impl SecretsKey {
    /// Make a new key file (mode 0600); refuses to overwrite one.
    pub fn create(path: &Path) -> Result<SecretsKey, ClientError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut raw = [0u8; 32];
        random(&mut raw)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| cfg(format!("secrets key {}: {e}", path.display())))?;
        f.write_all(format!("{}\n", tessera_wire::map_sig::to_hex(&raw)).as_bytes())
            .map_err(|e| cfg(format!("secrets key {}: {e}", path.display())))?;
        SecretsKey::from_bytes(&raw)
    }

    /// Read a key file written by [`SecretsKey::create`].
    pub fn load(path: &Path) -> Result<SecretsKey, ClientError> {
        let bad = |why: &str| cfg(format!("secrets key {}: {why}", path.display()));
        let text = std::fs::read_to_string(path).map_err(|e| bad(&e.to_string()))?;
        let hex = text.trim();
        if hex.len() != 64 {
            return Err(bad("expected 64 hex digits"));
        }
        let raw: Vec<u8> = (0..64)
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
            .collect::<Result<_, _>>()
            .map_err(|_| bad("not hex"))?;
        SecretsKey::from_bytes(&raw)
    }

    fn from_bytes(raw: &[u8]) -> Result<SecretsKey, ClientError> {
        let key = UnboundKey::new(&AES_256_GCM, raw).map_err(|_| cfg("secrets key is not 32 bytes".into()))?;
        Ok(SecretsKey { key: LessSafeKey::new(key) })
    }

    /// Seal `secret` for key `id` of `user`: nonce, ciphertext, tag.
    pub fn seal(&self, user: &str, id: &str, secret: &[u8]) -> Result<Vec<u8>, ClientError> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut out = secret.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(user, id)), &mut out)
            .map_err(|_| cfg("sealing a secret failed".into()))?;
        let mut sealed = nonce.to_vec();
        sealed.extend_from_slice(&out);
        Ok(sealed)
    }

    /// Open a secret sealed by [`SecretsKey::seal`] for the same user and id.
    pub fn open(&self, user: &str, id: &str, sealed: &[u8]) -> Result<Vec<u8>, ClientError> {
        let bad = || cfg(format!("access key {id} of {user}: the sealed secret does not open with this secrets key"));
        if sealed.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut buf = body.to_vec();
        let plain = self.key.open_in_place(nonce, Aad::from(aad(user, id)), &mut buf).map_err(|_| bad())?;
        Ok(plain.to_vec())
    }
}

fn aad(user: &str, id: &str) -> Vec<u8> {
    format!("tessera access key\0{user}\0{id}").into_bytes()
}

/// A new access key: its id (`TK` + 18 base32 characters) and a 40-character
/// secret (base62), both from the system's random source.
pub fn new_access_key() -> Result<(String, String), ClientError> {
    const B32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const B62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut raw = [0u8; 18];
    random(&mut raw)?;
    let id: String = "TK".chars().chain(raw.iter().map(|b| B32[usize::from(*b) % 32] as char)).collect();
    // 248 = 4 × 62: rejection keeps every character equally likely.
    let mut secret = String::with_capacity(40);
    while secret.len() < 40 {
        let mut b = [0u8; 1];
        random(&mut b)?;
        if b[0] < 248 {
            secret.push(B62[usize::from(b[0]) % 62] as char);
        }
    }
    Ok((id, secret))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_user_and_id() {
        let dir = std::env::temp_dir().join(format!("tessera-secrets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = SecretsKey::create(&dir.join("k")).unwrap();
        assert!(SecretsKey::create(&dir.join("k")).is_err(), "a key file is never overwritten");
        let again = SecretsKey::load(&dir.join("k")).unwrap();
        let other = SecretsKey::create(&dir.join("o")).unwrap();
        let (id, secret) = new_access_key().unwrap();
        assert!(tessera_wire::registry::valid_key_id(&id), "{id}");
        assert_eq!(secret.len(), 40);
        let sealed = key.seal("alice", &id, secret.as_bytes()).unwrap();
        assert!(!sealed.windows(8).any(|w| secret.as_bytes().windows(8).any(|s| s == w)), "the secret shows");
        assert_eq!(again.open("alice", &id, &sealed).unwrap(), secret.as_bytes());
        assert!(other.open("alice", &id, &sealed).is_err());
        assert!(key.open("bob", &id, &sealed).is_err());
        assert!(key.open("alice", "TKAAAAAAAAAAAAAAAAAA", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[20] ^= 1;
        assert!(key.open("alice", &id, &flipped).is_err());
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(dir.join("k")).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert_ne!(new_access_key().unwrap(), new_access_key().unwrap());
    }
}
