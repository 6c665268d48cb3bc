//! The principal registry: the region's list of users (with their access
//! keys) and of revoked certificates. A certificate of the region's CA
//! proves who a client is; the registry says whether that principal may
//! still come in. It is one small document, signed with the map-signing
//! key like a cluster map (only an operator holding that key changes
//! it), pushed to every node and learned by nodes that were down, and
//! kept by every node: it survives the loss of any zone.
//!
//! Until an operator first adds a user (version 0, the registry of a new
//! region) every user certificate of the CA is admitted; from then on a
//! user must be listed. A revoked certificate (by SHA-256 of its DER) is
//! refused whatever its role, and a node closes open connections it
//! refuses the moment it takes a new registry.

use serde::{Deserialize, Serialize};

use crate::map_sig::MapSignature;
use crate::{Principal, Role};

/// Most users in a registry.
pub const USERS_MAX: usize = 10_000;
/// Most access keys per user (S3 allows two; rotation needs two).
pub const KEYS_PER_USER_MAX: usize = 4;
/// Most revoked certificates listed (expired ones can be dropped).
pub const REVOKED_MAX: usize = 10_000;
/// Bytes of a sealed secret: nonce, secret, tag.
pub const SEALED_SECRET_MAX: usize = 128;
/// Largest encoded registry accepted (SetRegistry payload, GetRegistry answer).
pub const REGISTRY_BYTES_MAX: u64 = 8 << 20;
/// What a registry signature covers, before the registry's postcard bytes.
pub const SIGNED_CONTEXT: &[u8] = b"tessera principal registry v1\0";

/// The region's users and revoked certificates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    /// Raised by one with every change; nodes take only newer ones.
    pub version: u64,
    /// Users, sorted by name.
    pub users: Vec<RegistryUser>,
    /// Certificates refused whatever they name.
    pub revoked: Vec<RevokedCert>,
}

/// One user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryUser {
    /// Principal name (`user:NAME`).
    pub name: String,
    /// When it was added.
    pub created_ms: u64,
    /// Its access keys (for S3 request signing).
    pub keys: Vec<AccessKey>,
}

/// An access key: a public id and a secret, the secret sealed (AES-256-GCM)
/// under the region's secrets key so the registry on every node's disk
/// holds no usable secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    /// Public id (`TK` and 18 of A-Z 2-7).
    pub id: String,
    /// Nonce, ciphertext and tag of the secret.
    pub sealed_secret: Vec<u8>,
    /// When it was made.
    pub created_ms: u64,
}

/// A certificate no node admits any more.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedCert {
    /// SHA-256 of the certificate's DER.
    pub fingerprint: [u8; 32],
    /// The principal it named (for listings and refusals).
    pub principal: String,
    /// When it was revoked.
    pub revoked_ms: u64,
}

/// Why a registry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Bytes could not be read.
    #[error("principal registry bytes are malformed: {0}")]
    Malformed(String),
    /// A rule is broken.
    #[error("principal registry version {version}: {detail}")]
    Invalid {
        /// Version of the refused registry.
        version: u64,
        /// What was wrong.
        detail: String,
    },
}

impl Registry {
    /// Check every rule; called on every registry received.
    pub fn validate(&self) -> Result<(), RegistryError> {
        let bad = |detail: String| RegistryError::Invalid { version: self.version, detail };
        if self.users.len() > USERS_MAX {
            return Err(bad(format!("{} users exceeds {USERS_MAX}", self.users.len())));
        }
        if self.revoked.len() > REVOKED_MAX {
            return Err(bad(format!("{} revoked certificates exceeds {REVOKED_MAX}", self.revoked.len())));
        }
        for pair in self.users.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(bad(format!("users not sorted or listed twice: {:?}, {:?}", pair[0].name, pair[1].name)));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for u in &self.users {
            if !crate::valid_principal_name(&u.name) {
                return Err(bad(format!("user name {:?} is not a principal name", u.name)));
            }
            if u.keys.len() > KEYS_PER_USER_MAX {
                return Err(bad(format!(
                    "user {} has {} access keys (at most {KEYS_PER_USER_MAX})",
                    u.name,
                    u.keys.len()
                )));
            }
            for k in &u.keys {
                if !valid_key_id(&k.id) {
                    return Err(bad(format!(
                        "access key id {:?} of user {}: expected TK and 18 of A-Z 2-7",
                        k.id, u.name
                    )));
                }
                if !ids.insert(k.id.as_str()) {
                    return Err(bad(format!("access key id {} is listed twice", k.id)));
                }
                if k.sealed_secret.len() > SEALED_SECRET_MAX || k.sealed_secret.len() < 12 + 16 {
                    return Err(bad(format!("access key {}: sealed secret of {} bytes", k.id, k.sealed_secret.len())));
                }
            }
        }
        Ok(())
    }

    /// The user of this name.
    pub fn user(&self, name: &str) -> Option<&RegistryUser> {
        self.users.binary_search_by(|u| u.name.as_str().cmp(name)).ok().map(|i| &self.users[i])
    }

    /// Whether a connection by `who`, presenting the certificate whose
    /// SHA-256 is `fingerprint`, may go on; the refusal names why.
    pub fn admits(&self, who: &Principal, fingerprint: &[u8; 32]) -> Result<(), String> {
        if let Some(r) = self.revoked.iter().find(|r| &r.fingerprint == fingerprint) {
            return Err(format!(
                "the certificate of {who} (sha256 {}) was revoked (registry version {})",
                crate::map_sig::to_hex(&r.fingerprint[..8]),
                self.version
            ));
        }
        if who.role == Role::User && self.version > 0 && self.user(&who.name).is_none() {
            return Err(format!(
                "{who} is not a user of this region (registry version {}): an admin adds it with `tessera admin user \
                 add {}`",
                self.version, who.name
            ));
        }
        Ok(())
    }

    /// Encode for the wire, with the signature trailer if signed.
    pub fn to_wire(&self, signature: Option<&MapSignature>) -> Result<Vec<u8>, RegistryError> {
        let mut out = postcard::to_stdvec(self).map_err(|e| RegistryError::Malformed(e.to_string()))?;
        if let Some(s) = signature {
            crate::map_sig::push_trailer(&mut out, s);
        }
        Ok(out)
    }

    /// Decode and validate a SetRegistry payload or GetRegistry answer:
    /// the registry, its postcard bytes (what the signature covers) and
    /// its signature if any.
    pub fn from_wire(bytes: &[u8]) -> Result<(Registry, &[u8], Option<MapSignature>), RegistryError> {
        if bytes.len() as u64 > REGISTRY_BYTES_MAX {
            return Err(RegistryError::Malformed(format!("{} bytes exceeds {REGISTRY_BYTES_MAX}", bytes.len())));
        }
        let (reg, rest) =
            postcard::take_from_bytes::<Registry>(bytes).map_err(|e| RegistryError::Malformed(e.to_string()))?;
        reg.validate()?;
        let body = &bytes[..bytes.len() - rest.len()];
        let signature = crate::map_sig::trailer(rest)
            .map_err(|n| RegistryError::Malformed(format!("{n} bytes follow the registry and are not a signature")))?;
        Ok((reg, body, signature))
    }
}

/// Is `id` an access key id: `TK` then 18 of A-Z 2-7 (base32).
pub fn valid_key_id(id: &str) -> bool {
    id.len() == 20
        && id.starts_with("TK")
        && id.bytes().skip(2).all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn user(name: &str) -> RegistryUser {
        RegistryUser { name: name.into(), created_ms: 1, keys: vec![] }
    }

    #[test]
    fn users_must_be_listed_once_the_registry_is_in_use_and_revoked_certs_never_pass() {
        let bob = Principal::new(Role::User, "bob").unwrap();
        let admin = Principal::new(Role::Admin, "ops").unwrap();
        let fresh = Registry::default();
        assert!(fresh.admits(&bob, &[1; 32]).is_ok(), "a new region admits every certificate of its CA");
        let reg = Registry { version: 3, users: vec![user("alice")], revoked: vec![] };
        let e = reg.admits(&bob, &[1; 32]).unwrap_err();
        assert!(e.contains("user:bob is not a user") && e.contains("tessera admin user add bob"), "{e}");
        assert!(reg.admits(&admin, &[1; 32]).is_ok(), "admins are not users");
        let revoked = Registry {
            version: 4,
            users: vec![user("bob")],
            revoked: vec![RevokedCert { fingerprint: [9; 32], principal: "admin:ops".into(), revoked_ms: 5 }],
        };
        assert!(revoked.admits(&bob, &[1; 32]).is_ok());
        let e = revoked.admits(&admin, &[9; 32]).unwrap_err();
        assert!(e.contains("was revoked") && e.contains("0909090909090909"), "{e}");
    }

    #[test]
    fn the_rules_are_checked_on_every_registry() {
        let key = |id: &str| AccessKey { id: id.into(), sealed_secret: vec![0; 60], created_ms: 1 };
        let mut reg = Registry { version: 1, users: vec![user("a"), user("b")], revoked: vec![] };
        assert!(reg.validate().is_ok());
        reg.users[0].keys.push(key("TKABCDEFGHIJKLMNOP23"));
        assert!(reg.validate().is_ok());
        for (what, mut r, says) in [
            ("unsorted", Registry { users: vec![user("b"), user("a")], ..reg.clone() }, "not sorted"),
            ("twice", Registry { users: vec![user("a"), user("a")], ..reg.clone() }, "listed twice"),
            ("bad name", Registry { users: vec![user("a b")], ..reg.clone() }, "not a principal name"),
        ] {
            r.version = 2;
            let e = r.validate().unwrap_err().to_string();
            assert!(e.contains(says), "{what}: {e}");
        }
        let mut dup = reg.clone();
        dup.users[1].keys.push(key("TKABCDEFGHIJKLMNOP23"));
        assert!(dup.validate().unwrap_err().to_string().contains("listed twice"));
        let mut bad_id = reg.clone();
        bad_id.users[1].keys.push(key("AKIA0000000000000000"));
        assert!(bad_id.validate().unwrap_err().to_string().contains("TK and 18"));
        let mut many = reg.clone();
        many.users[1].keys = (0..5).map(|i| key(&format!("TKABCDEFGHIJKLMNOPQ{}", (b'A' + i) as char))).collect();
        assert!(many.validate().unwrap_err().to_string().contains("at most 4"));
    }

    #[test]
    fn wire_form_keeps_the_signed_bytes_and_refuses_trailing_junk() {
        let reg = Registry { version: 2, users: vec![user("a")], revoked: vec![] };
        let sig = MapSignature { key: crate::MapKey([3; 32]), value: [4; 64] };
        let bytes = reg.to_wire(Some(&sig)).unwrap();
        let (back, body, s) = Registry::from_wire(&bytes).unwrap();
        assert_eq!((back, s), (reg.clone(), Some(sig)));
        assert_eq!(body, &reg.to_wire(None).unwrap()[..]);
        let e = Registry::from_wire(&bytes[..bytes.len() - 1]).unwrap_err().to_string();
        assert!(e.contains("not a signature"), "{e}");
    }
}
