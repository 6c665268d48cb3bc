//! Who is on the other end of a connection, as its TLS certificate says.
//!
//! A Tessera certificate names exactly one principal in one URI subject
//! alternative name, `urn:tessera:ROLE:NAME`, for example
//! `urn:tessera:user:alice` or `urn:tessera:node:n1`. The region is not in
//! the name: it is whichever region's CA issued the certificate (a node
//! admits only chains to its own region's CA). A URI SAN is used, not the
//! common name, because SANs are what verifiers and tools already treat as
//! the identity, and a URI cannot be mistaken for a host name.
//!
//! Nodes authorize from this value only, never from a field of a request.

use std::fmt;

/// Prefix of the URI SAN that carries a principal.
pub const PRINCIPAL_URI_PREFIX: &str = "urn:tessera:";

/// Longest principal name, bytes.
pub const PRINCIPAL_NAME_MAX: usize = 64;

/// What a principal may be trusted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A storage node of this region: internal operations (repair,
    /// rebuilds, commits on others' behalf, change logs).
    Node,
    /// An operator: cluster maps, repair rate, replication rules, users.
    Admin,
    /// An application: its own buckets and objects, and what ACLs and
    /// policies grant it.
    User,
    /// Another region's replication streamer, named by its region.
    Peer,
    /// An S3 gateway, which acts for a user it has authenticated.
    Gateway,
}

impl Role {
    /// Every role, in the order the docs list them.
    pub const ALL: [Role; 5] = [Role::Node, Role::Admin, Role::User, Role::Peer, Role::Gateway];

    /// The role's word in a certificate.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Admin => "admin",
            Role::User => "user",
            Role::Peer => "peer",
            Role::Gateway => "gateway",
        }
    }

    fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated identity: a role and a name unique within the role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal {
    /// What it may be trusted with.
    pub role: Role,
    /// Its name (user name, node name, peer region, gateway name).
    pub name: String,
}

/// Why a certificate's URI does not name a principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PrincipalError {
    /// Not of the form `urn:tessera:ROLE:NAME`.
    #[error("{uri:?} is not a Tessera principal (expected urn:tessera:ROLE:NAME)")]
    NotTessera {
        /// The URI.
        uri: String,
    },
    /// The role word is not one Tessera knows.
    #[error("{uri:?} names role {role:?}; roles are node, admin, user, peer, gateway")]
    UnknownRole {
        /// The URI.
        uri: String,
        /// The role word.
        role: String,
    },
    /// The name is empty, too long, or has characters outside the set.
    #[error("{uri:?}: a principal name is 1 to 64 characters of A-Z a-z 0-9 . _ @ -")]
    BadName {
        /// The URI.
        uri: String,
    },
    /// A certificate with no principal, or with several.
    #[error(
        "the certificate names {count} Tessera principals (urn:tessera:ROLE:NAME URI SANs); exactly one is needed"
    )]
    Count {
        /// How many it names.
        count: usize,
    },
}

/// Whether `name` may name a principal: short, and safe to print, log and
/// use in a file name.
pub fn valid_principal_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= PRINCIPAL_NAME_MAX
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

impl Principal {
    /// A principal, if `name` is valid.
    pub fn new(role: Role, name: &str) -> Result<Principal, PrincipalError> {
        let p = Principal { role, name: name.to_string() };
        if valid_principal_name(name) {
            Ok(p)
        } else {
            Err(PrincipalError::BadName { uri: p.uri() })
        }
    }

    /// The URI SAN that names this principal in a certificate.
    pub fn uri(&self) -> String {
        format!("{PRINCIPAL_URI_PREFIX}{}:{}", self.role, self.name)
    }

    /// Parse a URI SAN. `Ok(None)` for a URI that is not Tessera's (a
    /// certificate may carry other URIs).
    pub fn from_uri(uri: &str) -> Result<Option<Principal>, PrincipalError> {
        let Some(rest) = uri.strip_prefix(PRINCIPAL_URI_PREFIX) else {
            return Ok(None);
        };
        let Some((role, name)) = rest.split_once(':') else {
            return Err(PrincipalError::NotTessera { uri: uri.to_string() });
        };
        let role = Role::parse(role)
            .ok_or_else(|| PrincipalError::UnknownRole { uri: uri.to_string(), role: role.to_string() })?;
        if !valid_principal_name(name) {
            return Err(PrincipalError::BadName { uri: uri.to_string() });
        }
        Ok(Some(Principal { role, name: name.to_string() }))
    }

    /// The one principal among a certificate's URI SANs.
    pub fn from_uris<'a>(uris: impl IntoIterator<Item = &'a str>) -> Result<Principal, PrincipalError> {
        let mut found = Vec::new();
        for u in uris {
            if let Some(p) = Principal::from_uri(u)? {
                found.push(p);
            }
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            count => Err(PrincipalError::Count { count }),
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.role, self.name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_one_principal_or_say_why_not() {
        let alice = Principal::from_uris(["https://example.com", "urn:tessera:user:alice"]).unwrap();
        assert_eq!(alice, Principal { role: Role::User, name: "alice".into() });
        assert!(matches!(Principal::from_uris(["https://x"]), Err(PrincipalError::Count { count: 0 })));
        assert!(matches!(
            Principal::from_uris(["urn:tessera:user:a", "urn:tessera:admin:b"]),
            Err(PrincipalError::Count { count: 2 })
        ));
        assert!(matches!(Principal::from_uri("urn:tessera:root:x"), Err(PrincipalError::UnknownRole { .. })));
        assert!(matches!(Principal::from_uri("urn:tessera:user"), Err(PrincipalError::NotTessera { .. })));
        for bad in ["urn:tessera:user:", "urn:tessera:user:a b", "urn:tessera:user:a:b", "urn:tessera:user:\u{1b}[2J"] {
            assert!(matches!(Principal::from_uri(bad), Err(PrincipalError::BadName { .. })), "{bad}");
        }
        let long = format!("urn:tessera:user:{}", "a".repeat(65));
        assert!(matches!(Principal::from_uri(&long), Err(PrincipalError::BadName { .. })));
    }

    /// Random names from an alphabet with both allowed and refused
    /// characters: a name parses exactly when it is valid, and a parsed
    /// URI is written back identically.
    #[test]
    fn uris_round_trip_and_refuse_exactly_the_bad_names() {
        let alphabet: Vec<char> = "aZ09._@-: /\u{7f}\u{e9}\n".chars().collect();
        let mut seed = 0x5eed_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..5_000 {
            let len = next(70);
            let name: String = (0..len).map(|_| alphabet[next(alphabet.len())]).collect();
            let role = Role::ALL[next(Role::ALL.len())];
            let uri = format!("{PRINCIPAL_URI_PREFIX}{role}:{name}");
            let ok = !name.is_empty()
                && name.len() <= PRINCIPAL_NAME_MAX
                && name.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
            match Principal::from_uri(&uri) {
                Ok(Some(p)) => {
                    assert!(ok, "{uri:?} accepted");
                    assert_eq!(p.uri(), uri);
                    assert_eq!(Principal::new(role, &name).unwrap(), p);
                }
                other => assert!(!ok && Principal::new(role, &name).is_err(), "{uri:?}: {other:?}"),
            }
        }
    }
}
