//! How a cluster map carries its signature, on the wire and in a map
//! file. The signature proves an operator holding the region's map-signing
//! key made the map, so a node that learns a map from a peer (or is sent
//! one by a stolen admin certificate) cannot be handed a forged region.
//!
//! On the wire (SetMap payload, GetMap answer) a signed map is the map's
//! postcard bytes followed by a 100-byte trailer: `TMS1`, the signer's
//! 32-byte Ed25519 public key, the 64-byte signature. Unsigned maps have
//! no trailer; any other trailing bytes are refused. The signed message is
//! [`SIGNED_CONTEXT`] followed by the postcard bytes, so a map signature
//! can never be mistaken for a signature over anything else.
//!
//! In a TOML map file the signature is a `[signature]` table after the
//! map: `key = "ed25519:<64 hex>"`, `value = "<128 hex>"`. It signs the
//! postcard encoding of the rest of the file, so editing any field of the
//! map (even the epoch) invalidates it.
//!
//! This module only frames; signing and checking are the client's and the
//! node's (they hold the crypto library).

use crate::map::{ClusterMap, MapError, MAP_BYTES_MAX};

/// First bytes of the wire trailer.
pub const TRAILER_MAGIC: [u8; 4] = *b"TMS1";
/// Bytes of the wire trailer.
pub const TRAILER_LEN: usize = 4 + 32 + 64;
/// What is signed before the map's postcard bytes (domain separation).
pub const SIGNED_CONTEXT: &[u8] = b"tessera cluster map v1\0";
/// How a public key is written in configs and files.
pub const KEY_PREFIX: &str = "ed25519:";

/// An Ed25519 public key that signs maps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MapKey(pub [u8; 32]);

impl MapKey {
    /// Parse `ed25519:<64 hex digits>`.
    pub fn parse(s: &str) -> Result<MapKey, MapError> {
        let bad =
            |why: &str| MapError::Signature(format!("map key {s:?}: {why} (expected {KEY_PREFIX}<64 hex digits>)"));
        let hex = s.trim().strip_prefix(KEY_PREFIX).ok_or_else(|| bad("unknown algorithm"))?;
        let bytes = from_hex(hex).ok_or_else(|| bad("not hex"))?;
        Ok(MapKey(bytes.try_into().map_err(|_| bad("not 32 bytes"))?))
    }
}

impl std::fmt::Display for MapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{KEY_PREFIX}{}", to_hex(&self.0))
    }
}

impl std::fmt::Debug for MapKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// A signature over one map by one key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct MapSignature {
    /// Who signed.
    pub key: MapKey,
    /// Ed25519 signature over [`signed_message`].
    pub value: [u8; 64],
}

/// A map with its signature, if it has one, and the exact postcard bytes
/// the signature covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedMap {
    /// The map (validated).
    pub map: ClusterMap,
    /// Its postcard encoding.
    pub postcard: Vec<u8>,
    /// The signature, if any.
    pub signature: Option<MapSignature>,
}

/// The signature in what follows a signed document's postcard bytes:
/// nothing (unsigned) or exactly one trailer; otherwise the count of
/// bytes that are neither.
pub fn trailer(rest: &[u8]) -> Result<Option<MapSignature>, usize> {
    match rest.len() {
        0 => Ok(None),
        TRAILER_LEN if rest[..4] == TRAILER_MAGIC => {
            let mut key = [0u8; 32];
            key.copy_from_slice(&rest[4..36]);
            let mut value = [0u8; 64];
            value.copy_from_slice(&rest[36..]);
            Ok(Some(MapSignature { key: MapKey(key), value }))
        }
        n => Err(n),
    }
}

/// Append the trailer carrying `sig`.
pub fn push_trailer(out: &mut Vec<u8>, sig: &MapSignature) {
    out.extend_from_slice(&TRAILER_MAGIC);
    out.extend_from_slice(&sig.key.0);
    out.extend_from_slice(&sig.value);
}

/// The bytes a map signature covers.
pub fn signed_message(postcard: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNED_CONTEXT.len() + postcard.len());
    m.extend_from_slice(SIGNED_CONTEXT);
    m.extend_from_slice(postcard);
    m
}

impl SignedMap {
    /// A map without a signature yet.
    pub fn unsigned(map: ClusterMap) -> Result<SignedMap, MapError> {
        map.validate()?;
        let postcard = map.to_postcard()?;
        Ok(SignedMap { map, postcard, signature: None })
    }

    /// Decode a SetMap payload or GetMap answer: the map, then nothing or
    /// exactly one signature trailer.
    pub fn from_wire(bytes: &[u8]) -> Result<SignedMap, MapError> {
        if bytes.len() as u64 > MAP_BYTES_MAX {
            return Err(MapError::Postcard(format!("{} bytes exceeds {MAP_BYTES_MAX}", bytes.len())));
        }
        let (map, rest) =
            postcard::take_from_bytes::<ClusterMap>(bytes).map_err(|e| MapError::Postcard(e.to_string()))?;
        map.validate()?;
        let postcard = bytes[..bytes.len() - rest.len()].to_vec();
        let signature = trailer(rest).map_err(|n| {
            MapError::Postcard(format!(
                "{n} bytes follow the map and are not a signature trailer ({TRAILER_LEN} bytes starting TMS1)"
            ))
        })?;
        Ok(SignedMap { map, postcard, signature })
    }

    /// The wire form: postcard bytes, then the trailer if signed.
    pub fn to_wire(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.postcard.len() + TRAILER_LEN);
        out.extend_from_slice(&self.postcard);
        if let Some(s) = &self.signature {
            push_trailer(&mut out, s);
        }
        out
    }

    /// Parse a TOML map file, with its `[signature]` table if it has one.
    pub fn from_toml(text: &str) -> Result<SignedMap, MapError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| MapError::Toml(e.to_string()))?;
        let signature = match table.remove("signature") {
            None => None,
            Some(v) => Some(signature_from_toml(v)?),
        };
        let map: ClusterMap = table.try_into().map_err(|e: toml::de::Error| MapError::Toml(e.to_string()))?;
        map.validate()?;
        let postcard = map.to_postcard()?;
        Ok(SignedMap { map, postcard, signature })
    }

    /// The TOML map file, with the `[signature]` table last if signed.
    pub fn to_toml(&self) -> Result<String, MapError> {
        let mut text = self.map.to_toml()?;
        if let Some(s) = &self.signature {
            if !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(&format!("\n[signature]\nkey = \"{}\"\nvalue = \"{}\"\n", s.key, to_hex(&s.value)));
        }
        Ok(text)
    }
}

/// A map file's text with `sig` as its `[signature]` table: any table of
/// that name is removed and the new one appended, every other line kept
/// as written (comments, order), so configuration management can compare
/// the file with what it rendered.
pub fn sign_text(text: &str, sig: &MapSignature) -> String {
    let mut out = String::with_capacity(text.len() + 200);
    let mut in_signature = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            in_signature = t == "[signature]";
        }
        if !in_signature {
            out.push_str(line);
            out.push('\n');
        }
    }
    let kept = out.trim_end_matches('\n').len();
    out.truncate(kept);
    out.push_str(&format!("\n\n[signature]\nkey = \"{}\"\nvalue = \"{}\"\n", sig.key, to_hex(&sig.value)));
    out
}

fn signature_from_toml(v: toml::Value) -> Result<MapSignature, MapError> {
    let bad = |why: String| MapError::Signature(format!("[signature] of the map file: {why}"));
    let toml::Value::Table(t) = v else {
        return Err(bad("not a table".into()));
    };
    if let Some(other) = t.keys().find(|k| *k != "key" && *k != "value") {
        return Err(bad(format!("unknown field {other:?} (expected key and value)")));
    }
    let text = |name: &str| t.get(name).and_then(|v| v.as_str()).ok_or_else(|| bad(format!("{name} is missing")));
    let key = MapKey::parse(text("key")?)?;
    let value = from_hex(text("value")?)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .ok_or_else(|| bad("value is not 128 hex digits".into()))?;
    Ok(MapSignature { key, value })
}

/// Lowercase hex.
pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|d| u8::from_str_radix(d, 16).ok())).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map() -> ClusterMap {
        ClusterMap::uniform("r", 3, 2, 2, 1, 1 << 30, 7_000, |z, n| {
            std::net::IpAddr::from([127, 0, z as u8 + 1, n as u8 + 1])
        })
    }

    fn signed() -> SignedMap {
        let mut s = SignedMap::unsigned(map()).unwrap();
        s.signature = Some(MapSignature { key: MapKey([7; 32]), value: [9; 64] });
        s
    }

    #[test]
    fn wire_and_toml_keep_the_signature_and_the_signed_bytes() {
        let s = signed();
        assert_eq!(SignedMap::from_wire(&s.to_wire()).unwrap(), s);
        assert_eq!(SignedMap::from_toml(&s.to_toml().unwrap()).unwrap(), s);
        let plain = SignedMap::unsigned(map()).unwrap();
        assert_eq!(SignedMap::from_wire(&plain.to_wire()).unwrap(), plain);
        assert_eq!(SignedMap::from_toml(&plain.to_toml().unwrap()).unwrap(), plain);
        // Plain map files and payloads still read as maps.
        assert_eq!(ClusterMap::from_postcard(&s.to_wire()).unwrap(), s.map);
    }

    #[test]
    fn other_trailing_bytes_are_refused() {
        let s = signed();
        for cut in [1, TRAILER_LEN - 1] {
            let w = s.to_wire();
            let e = SignedMap::from_wire(&w[..w.len() - cut]).unwrap_err();
            assert!(e.to_string().contains("not a signature trailer"), "{e}");
        }
        let mut w = s.to_wire();
        let at = s.postcard.len();
        w[at] = b'X';
        assert!(SignedMap::from_wire(&w).is_err());
    }

    #[test]
    fn malformed_signature_tables_are_named() {
        let text = SignedMap::unsigned(map()).unwrap().to_toml().unwrap();
        for (table, says) in [
            ("key = \"rsa:00\"\nvalue = \"00\"", "unknown algorithm"),
            ("key = \"ed25519:0g\"\nvalue = \"00\"", "not hex"),
            ("key = \"ed25519:00\"\nvalue = \"00\"", "not 32 bytes"),
            (&format!("key = \"{}\"\nvalue = \"00\"", MapKey([1; 32])), "128 hex digits"),
            (&format!("key = \"{}\"", MapKey([1; 32])), "value is missing"),
            ("who = 1", "unknown field"),
        ] {
            let e = SignedMap::from_toml(&format!("{text}\n[signature]\n{table}\n")).unwrap_err();
            assert!(e.to_string().contains(says), "{table}: {e}");
        }
    }

    #[test]
    fn signing_a_text_keeps_every_other_line() {
        let s = signed();
        let text = format!("# comment kept\n{}", SignedMap::unsigned(s.map.clone()).unwrap().to_toml().unwrap());
        let sig = s.signature.unwrap();
        let once = sign_text(&text, &sig);
        assert!(once.starts_with(text.trim_end()), "{once}");
        assert_eq!(SignedMap::from_toml(&once).unwrap(), s);
        // Signing again replaces the table, wherever it was.
        assert_eq!(sign_text(&once, &sig), once);
        // A table in the middle (before the first other table) is replaced too.
        let table = &once[once.find("[signature]").unwrap()..];
        let first = text.find("\n[").unwrap() + 1;
        let moved = format!("{}{table}\n{}", &text[..first], &text[first..]);
        assert!(SignedMap::from_toml(&moved).is_ok(), "{moved}");
        assert_eq!(SignedMap::from_toml(&sign_text(&moved, &sig)).unwrap(), s);
    }

    #[test]
    fn keys_print_as_they_parse() {
        let k = MapKey([0xab; 32]);
        assert_eq!(MapKey::parse(&k.to_string()).unwrap(), k);
    }
}
