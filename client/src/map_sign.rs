//! Signing and checking cluster maps with Ed25519 (the framing is
//! [`tessera_wire::map_sig`]). The admin's CLI signs with the region's
//! map-signing key; every node checks every map it takes, pushed or
//! learned from a peer, against the public keys its config trusts.

use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use tessera_wire::map_sig::{signed_message, MapKey, MapSignature, SignedMap};
use tessera_wire::MapError;

/// The private half of a map-signing key, loaded from a PKCS#8 PEM file.
pub struct MapSigner {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for MapSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MapSigner({})", self.key())
    }
}

impl MapSigner {
    /// Load a PKCS#8 PEM Ed25519 private key (`tessera admin map-key new`).
    pub fn load(path: &Path) -> Result<MapSigner, MapError> {
        let bad = |why: String| MapError::Signature(format!("map-signing key {}: {why}", path.display()));
        let der = PrivatePkcs8KeyDer::from_pem_file(path).map_err(|e| bad(e.to_string()))?;
        MapSigner::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| bad(e.to_string()))
    }

    /// From PKCS#8 DER bytes.
    pub fn from_pkcs8(der: &[u8]) -> Result<MapSigner, MapError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| MapError::Signature(format!("not an Ed25519 PKCS#8 key: {e}")))?;
        Ok(MapSigner { pair })
    }

    /// The public key nodes must trust (`map_keys` in node.toml).
    pub fn key(&self) -> MapKey {
        let mut k = [0u8; 32];
        k.copy_from_slice(self.pair.public_key().as_ref());
        MapKey(k)
    }

    /// Sign a map (replacing any signature it had).
    pub fn sign(&self, map: &mut SignedMap) {
        map.signature = Some(self.sign_bytes(&signed_message(&map.postcard)));
    }

    /// Sign a message built with its own context string (the principal
    /// registry's).
    pub fn sign_bytes(&self, message: &[u8]) -> MapSignature {
        let sig = self.pair.sign(message);
        let mut value = [0u8; 64];
        value.copy_from_slice(sig.as_ref());
        MapSignature { key: self.key(), value }
    }
}

/// Check `signature` over `message` against `trusted`; `what` names the
/// document in errors (e.g. "map epoch 7").
pub fn verify_signed(
    what: &str,
    message: &[u8],
    signature: Option<&MapSignature>,
    trusted: &[MapKey],
) -> Result<MapKey, MapError> {
    let Some(sig) = signature else {
        return Err(MapError::Signature(format!(
            "{what} is not signed: sign it with the region's map-signing key (map_key in the admin's config, or \
             `tessera admin map sign`)"
        )));
    };
    if !trusted.contains(&sig.key) {
        return Err(MapError::Signature(format!(
            "{what} is signed by {}, which this node does not trust (map_keys in node.toml: {})",
            sig.key,
            if trusted.is_empty() {
                "none".to_string()
            } else {
                trusted.iter().map(|k| k.to_string()).collect::<Vec<_>>().join(", ")
            }
        )));
    }
    UnparsedPublicKey::new(&ED25519, &sig.key.0).verify(message, &sig.value).map_err(|_| {
        MapError::Signature(format!("{what}: the signature by {} does not match it (altered after signing?)", sig.key))
    })?;
    Ok(sig.key)
}

/// Check that a map is signed by one of `trusted`; names the signer.
pub fn verify_map(map: &SignedMap, trusted: &[MapKey]) -> Result<MapKey, MapError> {
    let what = format!("map epoch {}", map.map.epoch);
    verify_signed(&what, &signed_message(&map.postcard), map.signature.as_ref(), trusted)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tessera_wire::ClusterMap;

    fn signer() -> MapSigner {
        let doc = Ed25519KeyPair::generate().unwrap().to_pkcs8().unwrap();
        MapSigner::from_pkcs8(doc.as_ref()).unwrap()
    }

    fn map() -> SignedMap {
        let m = ClusterMap::uniform("r", 3, 2, 2, 1, 1 << 30, 7_000, |z, n| {
            std::net::IpAddr::from([127, 0, z as u8 + 1, n as u8 + 1])
        });
        SignedMap::unsigned(m).unwrap()
    }

    #[test]
    fn a_signed_map_verifies_only_as_signed_and_only_for_trusted_keys() {
        let (a, b) = (signer(), signer());
        let mut m = map();
        assert!(verify_map(&m, &[a.key()]).unwrap_err().to_string().contains("not signed"));
        a.sign(&mut m);
        assert_eq!(verify_map(&m, &[b.key(), a.key()]).unwrap(), a.key());
        let e = verify_map(&m, &[b.key()]).unwrap_err().to_string();
        assert!(e.contains("does not trust") && e.contains(&b.key().to_string()), "{e}");
        // Through the wire and a file, unchanged.
        assert!(verify_map(&SignedMap::from_wire(&m.to_wire()).unwrap(), &[a.key()]).is_ok());
        assert!(verify_map(&SignedMap::from_toml(&m.to_toml().unwrap()).unwrap(), &[a.key()]).is_ok());
        // Any change to the map breaks it: the epoch, a bit of the signature.
        let mut bumped = m.clone();
        bumped.map.epoch += 1;
        bumped.postcard = bumped.map.to_postcard().unwrap();
        assert!(verify_map(&bumped, &[a.key()]).unwrap_err().to_string().contains("does not match"));
        let mut flipped = m.clone();
        if let Some(s) = flipped.signature.as_mut() {
            s.value[5] ^= 1;
        }
        assert!(verify_map(&flipped, &[a.key()]).unwrap_err().to_string().contains("does not match"));
        // A signature copied onto another key's name does not verify.
        let mut claimed = m.clone();
        if let Some(s) = claimed.signature.as_mut() {
            s.key = b.key();
        }
        assert!(verify_map(&claimed, &[b.key()]).unwrap_err().to_string().contains("does not match"));
    }
}
