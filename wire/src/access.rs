//! Who may act on a bucket or an object besides operators: canned ACLs,
//! bucket policies, and the one function that decides. Nodes call
//! [`decide`] with the principal their TLS handshake proved; clients and
//! the CLI use the same types to parse and show settings, so the rules
//! exist once.
//!
//! The model is S3's classic one, cut to what Tessera serves:
//!
//! - The bucket owner (its creator) may list, write, delete and change
//!   the bucket's ACL and policy.
//! - The object owner (its writer) may read it. Others read it when the
//!   object's canned ACL says so (`public-read`, `authenticated-read`, or
//!   `bucket-owner-read`/`bucket-owner-full-control` for the bucket owner).
//! - A bucket's canned ACL grants listing (`public-read`,
//!   `authenticated-read`) and writing and deleting (`public-read-write`)
//!   to every principal of the region. Every principal is authenticated in
//!   the native protocol, so "public" and "authenticated" differ only for
//!   the S3 gateway's anonymous requests.
//! - A bucket policy grants or denies actions to named principals (or
//!   `*`) on the bucket and key prefixes; an explicit deny wins over every
//!   grant, including the owner's (except the owner's right to read and
//!   change the ACL and policy, so a policy cannot lock its owner out).
//! - Admins and nodes act on every bucket; policies do not bind them
//!   (an operator can always repair a bucket whose owner locked it).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::message::Acl;
use crate::principal::{Principal, Role};

/// Most statements in one bucket policy.
pub const POLICY_STATEMENTS_MAX: usize = 16;
/// Most principals, actions or resources in one statement.
pub const POLICY_LIST_MAX: usize = 16;
/// Most bytes of a policy, postcard-encoded (it is stored in one metadata
/// record next to the bucket's name).
pub const POLICY_BYTES_MAX: usize = 2_048;
/// Most bytes of a policy document as JSON text.
pub const POLICY_JSON_BYTES_MAX: usize = 20 * 1_024;

/// What a request does to a bucket or object, as policies name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Action {
    /// Read an object or its metadata.
    Get,
    /// Write an object (and commit the writer's own version).
    Put,
    /// Delete an object or purge a version.
    Delete,
    /// List keys or versions.
    List,
    /// Read or change the bucket's ACL and policy.
    Acl,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 5] = [Action::Get, Action::Put, Action::Delete, Action::List, Action::Acl];

    /// The action's word in a policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Put => "put",
            Action::Delete => "delete",
            Action::List => "list",
            Action::Acl => "acl",
        }
    }

    /// The actions a policy word names: Tessera's own words, `*`, and the
    /// S3 action names that map onto them.
    pub fn parse(word: &str) -> Option<Vec<Action>> {
        let one = |a| Some(vec![a]);
        match word {
            "*" | "s3:*" => Some(Action::ALL.to_vec()),
            "get" | "s3:GetObject" | "s3:GetObjectVersion" => one(Action::Get),
            "put" | "s3:PutObject" => one(Action::Put),
            "delete" | "s3:DeleteObject" | "s3:DeleteObjectVersion" => one(Action::Delete),
            "list" | "s3:ListBucket" | "s3:ListBucketVersions" => one(Action::List),
            "acl"
            | "s3:GetBucketAcl"
            | "s3:PutBucketAcl"
            | "s3:GetObjectAcl"
            | "s3:PutObjectAcl"
            | "s3:GetBucketPolicy"
            | "s3:PutBucketPolicy"
            | "s3:DeleteBucketPolicy" => one(Action::Acl),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Acl {
    /// Every canned ACL.
    pub const ALL: [Acl; 6] = [
        Acl::Private,
        Acl::PublicRead,
        Acl::PublicReadWrite,
        Acl::AuthenticatedRead,
        Acl::BucketOwnerRead,
        Acl::BucketOwnerFullControl,
    ];

    /// The canned ACL's S3 name (`x-amz-acl`).
    pub fn as_str(self) -> &'static str {
        match self {
            Acl::Private => "private",
            Acl::PublicRead => "public-read",
            Acl::PublicReadWrite => "public-read-write",
            Acl::AuthenticatedRead => "authenticated-read",
            Acl::BucketOwnerRead => "bucket-owner-read",
            Acl::BucketOwnerFullControl => "bucket-owner-full-control",
        }
    }

    /// A canned ACL by its S3 name; the error lists the names.
    pub fn parse(name: &str) -> Result<Acl, String> {
        Acl::ALL.into_iter().find(|a| a.as_str() == name).ok_or_else(|| {
            let names: Vec<&str> = Acl::ALL.iter().map(|a| a.as_str()).collect();
            format!("unknown canned ACL {name:?}: use one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Grant the actions.
    Allow,
    /// Refuse the actions, whatever else grants them.
    Deny,
}

/// Whom a statement is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Who {
    /// Every principal of the region.
    Anyone,
    /// These principals, as `role:name` (e.g. `user:alice`).
    Named(Vec<String>),
}

/// One rule of a bucket policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Optional label, echoed in refusals.
    pub sid: Option<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// Whom it binds.
    pub who: Who,
    /// What it allows or denies.
    pub actions: Vec<Action>,
    /// `bucket` (the bucket itself: list, acl) or `bucket/prefix*` and
    /// `bucket/key` (objects); a trailing `*` matches any rest.
    pub resources: Vec<String>,
}

/// A bucket policy: S3's JSON policy language without conditions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// The rules, in document order.
    pub statements: Vec<Statement>,
}

/// A bucket's access settings besides its owner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAccess {
    /// The bucket's canned ACL.
    pub acl: Acl,
    /// The bucket policy, if any.
    pub policy: Option<Policy>,
    /// When the settings were made (a version id from the setter's clock):
    /// every target keeps the newest it has seen, so targets that heard
    /// changes in different orders agree.
    pub stamp: crate::VersionId,
}

impl Default for BucketAccess {
    fn default() -> Self {
        BucketAccess { acl: Acl::Private, policy: None, stamp: crate::VersionId(0) }
    }
}

fn principal_word(p: &Principal) -> String {
    format!("{}:{}", p.role, p.name)
}

/// Normalize a policy principal: `user:alice`, `urn:tessera:user:alice`,
/// or a bare `alice` (a user).
fn parse_principal(s: &str) -> Result<String, String> {
    let s = s.strip_prefix(crate::PRINCIPAL_URI_PREFIX).unwrap_or(s);
    let (role, name) = s.split_once(':').unwrap_or(("user", s));
    let role = Role::ALL
        .into_iter()
        .find(|r| r.as_str() == role)
        .ok_or_else(|| format!("principal {s:?}: unknown role {role:?} (use user:NAME or gateway:NAME)"))?;
    if !crate::valid_principal_name(name) {
        return Err(format!("principal {s:?}: {name:?} is not a valid principal name"));
    }
    Ok(format!("{role}:{name}"))
}

fn parse_resource(bucket: &str, s: &str) -> Result<String, String> {
    let r = s.strip_prefix("arn:aws:s3:::").unwrap_or(s);
    let (b, rest) = match r.split_once('/') {
        Some((b, rest)) => (b, Some(rest)),
        None => (r, None),
    };
    if b != bucket {
        return Err(format!("resource {s:?} is not in bucket {bucket:?} (a bucket policy speaks of its own bucket)"));
    }
    if let Some(rest) = rest {
        if let Some(i) = rest.find('*') {
            if i + 1 != rest.len() {
                return Err(format!("resource {s:?}: '*' may only end a resource"));
            }
        }
        if rest.len() > crate::limits::KEY_BYTES_MAX {
            return Err(format!("resource {s:?}: the key part is longer than a key"));
        }
    }
    Ok(r.to_owned())
}

/// A JSON value that is one string or a list of strings.
fn strings(v: &serde_json::Value, field: &str) -> Result<Vec<String>, String> {
    let list = match v {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .map(|x| x.as_str().map(str::to_owned).ok_or_else(|| format!("{field}: every entry must be a string")))
            .collect::<Result<_, _>>()?,
        _ => return Err(format!("{field} must be a string or a list of strings")),
    };
    if list.is_empty() || list.len() > POLICY_LIST_MAX {
        return Err(format!("{field} must have 1 to {POLICY_LIST_MAX} entries, has {}", list.len()));
    }
    Ok(list)
}

impl Policy {
    /// Parse an S3-style policy document for `bucket`. Fields it does not
    /// know (`Condition`, `NotAction`, ...) are refused, never ignored: a
    /// condition silently dropped would grant more than its author meant.
    pub fn from_json(bucket: &str, text: &str) -> Result<Policy, String> {
        if text.len() > POLICY_JSON_BYTES_MAX {
            return Err(format!("policy has {} bytes, more than {POLICY_JSON_BYTES_MAX}", text.len()));
        }
        let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("policy is not JSON: {e}"))?;
        let obj = doc.as_object().ok_or("policy must be a JSON object")?;
        for k in obj.keys() {
            if !matches!(k.as_str(), "Version" | "Id" | "Statement") {
                return Err(format!("policy field {k:?} is not supported (Version, Id, Statement)"));
            }
        }
        let list = match obj.get("Statement") {
            Some(serde_json::Value::Array(a)) => a.clone(),
            Some(s @ serde_json::Value::Object(_)) => vec![s.clone()],
            _ => return Err("policy needs a Statement (an object or a list of objects)".into()),
        };
        if list.is_empty() || list.len() > POLICY_STATEMENTS_MAX {
            return Err(format!("a policy has 1 to {POLICY_STATEMENTS_MAX} statements, this one {}", list.len()));
        }
        let mut statements = Vec::new();
        for (i, s) in list.iter().enumerate() {
            let at = |e: String| format!("statement {}: {e}", i + 1);
            let s = s.as_object().ok_or_else(|| at("must be an object".into()))?;
            for k in s.keys() {
                if !matches!(k.as_str(), "Sid" | "Effect" | "Principal" | "Action" | "Resource") {
                    return Err(at(format!("field {k:?} is not supported (Sid, Effect, Principal, Action, Resource)")));
                }
            }
            let sid = match s.get("Sid") {
                None => None,
                Some(v) => Some(v.as_str().ok_or_else(|| at("Sid must be a string".into()))?.to_owned()),
            };
            let effect = match s.get("Effect").and_then(|e| e.as_str()) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => return Err(at("Effect must be \"Allow\" or \"Deny\"".into())),
            };
            let who = match s.get("Principal") {
                Some(serde_json::Value::String(star)) if star == "*" => Who::Anyone,
                Some(serde_json::Value::Object(m)) if m.len() == 1 => {
                    let (_, v) = m.iter().next().ok_or_else(|| at("empty Principal".into()))?;
                    let names = strings(v, "Principal").map_err(at)?;
                    if names.iter().any(|n| n == "*") {
                        Who::Anyone
                    } else {
                        Who::Named(names.iter().map(|n| parse_principal(n)).collect::<Result<_, _>>().map_err(at)?)
                    }
                }
                _ => return Err(at("Principal must be \"*\" or {\"Tessera\": [\"user:NAME\", ...]}".into())),
            };
            let mut actions = Vec::new();
            for a in strings(s.get("Action").ok_or_else(|| at("Action is missing".into()))?, "Action").map_err(at)? {
                let named = Action::parse(&a).ok_or_else(|| {
                    at(format!("unknown action {a:?} (get, put, delete, list, acl, * or their s3: names)"))
                })?;
                for x in named {
                    if !actions.contains(&x) {
                        actions.push(x);
                    }
                }
            }
            let resources = strings(s.get("Resource").ok_or_else(|| at("Resource is missing".into()))?, "Resource")
                .map_err(at)?
                .iter()
                .map(|r| parse_resource(bucket, r))
                .collect::<Result<_, _>>()
                .map_err(at)?;
            statements.push(Statement { sid, effect, who, actions, resources });
        }
        let policy = Policy { statements };
        policy.check(bucket)?;
        Ok(policy)
    }

    /// Check a policy that arrived encoded (from a client or a disk)
    /// against the same limits the parser applies.
    pub fn check(&self, bucket: &str) -> Result<(), String> {
        if self.statements.is_empty() || self.statements.len() > POLICY_STATEMENTS_MAX {
            return Err(format!(
                "a policy has 1 to {POLICY_STATEMENTS_MAX} statements, this one {}",
                self.statements.len()
            ));
        }
        for (i, s) in self.statements.iter().enumerate() {
            let n = |v: usize| v == 0 || v > POLICY_LIST_MAX;
            let names = match &s.who {
                Who::Anyone => 1,
                Who::Named(v) => v.len(),
            };
            if n(s.actions.len()) || n(s.resources.len()) || n(names) {
                return Err(format!(
                    "statement {}: principals, actions and resources need 1 to {POLICY_LIST_MAX} entries each",
                    i + 1
                ));
            }
            for r in &s.resources {
                if parse_resource(bucket, r)? != *r {
                    return Err(format!("statement {}: resource {r:?} is not in normal form", i + 1));
                }
            }
            if let Who::Named(v) = &s.who {
                for p in v {
                    if parse_principal(p)? != *p {
                        return Err(format!("statement {}: principal {p:?} is not in normal form", i + 1));
                    }
                }
            }
        }
        let bytes = postcard::to_allocvec(self).map_err(|e| format!("policy does not encode: {e}"))?.len();
        if bytes > POLICY_BYTES_MAX {
            return Err(format!(
                "policy takes {bytes} bytes encoded, more than {POLICY_BYTES_MAX}; use fewer or shorter statements"
            ));
        }
        Ok(())
    }

    /// The policy as a JSON document (what `from_json` reads back).
    pub fn to_json(&self) -> String {
        let statements: Vec<serde_json::Value> = self
            .statements
            .iter()
            .map(|s| {
                let mut m = serde_json::Map::new();
                if let Some(sid) = &s.sid {
                    m.insert("Sid".into(), sid.clone().into());
                }
                let effect = match s.effect {
                    Effect::Allow => "Allow",
                    Effect::Deny => "Deny",
                };
                m.insert("Effect".into(), effect.into());
                let who = match &s.who {
                    Who::Anyone => serde_json::Value::from("*"),
                    Who::Named(v) => serde_json::json!({ "Tessera": v }),
                };
                m.insert("Principal".into(), who);
                m.insert("Action".into(), s.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>().into());
                m.insert("Resource".into(), s.resources.clone().into());
                serde_json::Value::Object(m)
            })
            .collect();
        let doc = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

fn resource_matches(pattern: &str, resource: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => resource.starts_with(prefix),
        None => pattern == resource,
    }
}

impl Statement {
    fn binds(&self, who: &str, action: Action, resource: &str) -> bool {
        let named = match &self.who {
            Who::Anyone => true,
            Who::Named(v) => v.iter().any(|p| p == who),
        };
        named && self.actions.contains(&action) && self.resources.iter().any(|p| resource_matches(p, resource))
    }

    fn label(&self, i: usize) -> String {
        match &self.sid {
            Some(sid) => format!("statement {} ({sid:?})", i + 1),
            None => format!("statement {}", i + 1),
        }
    }
}

/// What a request touches, for [`decide`].
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The bucket's name.
    pub bucket: &'a str,
    /// The bucket's owner.
    pub bucket_owner: &'a str,
    /// The bucket's ACL and policy.
    pub access: &'a BucketAccess,
    /// The key, for object actions.
    pub key: Option<&'a str>,
    /// The object's owner and ACL, when the object exists (reads decide
    /// after finding it).
    pub object: Option<(&'a str, Acl)>,
}

/// Why a principal may act: the grant, for logs and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grant {
    /// Admins and nodes act everywhere.
    Operator,
    /// A bucket policy statement allows it.
    Policy,
    /// The principal owns the bucket.
    BucketOwner,
    /// The principal owns the object.
    ObjectOwner,
    /// A canned ACL (bucket's or object's) allows it.
    Acl,
}

/// Decide whether `who` may do `action` on `subject`. On no, the error
/// names the principal, the action, the resource, and what would have to
/// change. Pure: the node looks up the records and calls this; the
/// authorization matrix test calls it through real requests.
pub fn decide(who: &Principal, action: Action, s: &Subject<'_>) -> Result<Grant, String> {
    if matches!(who.role, Role::Admin | Role::Node) {
        return Ok(Grant::Operator);
    }
    if who.role == Role::Peer {
        return Err(format!(
            "{who} may not {action} in {}: peer regions replicate through the replication endpoint",
            s.bucket
        ));
    }
    // A bucket's owner can always read and change its ACL and policy, so
    // no policy locks its owner out for good (S3 keeps the same door open
    // for the owning account).
    if action == Action::Acl && s.bucket_owner == who.name {
        return Ok(Grant::BucketOwner);
    }
    let name = principal_word(who);
    let resource = match (action, s.key) {
        (Action::List | Action::Acl, _) | (_, None) => s.bucket.to_owned(),
        (_, Some(k)) => format!("{}/{k}", s.bucket),
    };
    let mut allowed = false;
    if let Some(p) = &s.access.policy {
        for (i, st) in p.statements.iter().enumerate() {
            if st.binds(&name, action, &resource) {
                match st.effect {
                    Effect::Deny => {
                        return Err(format!(
                            "{who} may not {action} {resource}: the bucket policy's {} denies it",
                            st.label(i)
                        ))
                    }
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        return Ok(Grant::Policy);
    }
    // Users and gateways remain; a name owns what it created.
    let bucket_owner = s.bucket_owner == who.name;
    match action {
        Action::Get => {
            if let Some((owner, acl)) = s.object {
                if owner == who.name {
                    return Ok(Grant::ObjectOwner);
                }
                let by_acl = match acl {
                    Acl::PublicRead | Acl::PublicReadWrite | Acl::AuthenticatedRead => true,
                    Acl::BucketOwnerRead | Acl::BucketOwnerFullControl => bucket_owner,
                    Acl::Private => false,
                };
                if by_acl {
                    return Ok(Grant::Acl);
                }
            } else if bucket_owner || lists(s.access.acl) {
                // No such object: whoever may list learns that much.
                return Ok(if bucket_owner { Grant::BucketOwner } else { Grant::Acl });
            }
        }
        Action::Put | Action::Delete => {
            if bucket_owner {
                return Ok(Grant::BucketOwner);
            }
            if s.access.acl == Acl::PublicReadWrite {
                return Ok(Grant::Acl);
            }
        }
        Action::List => {
            if bucket_owner {
                return Ok(Grant::BucketOwner);
            }
            if lists(s.access.acl) {
                return Ok(Grant::Acl);
            }
        }
        Action::Acl => {
            if bucket_owner {
                return Ok(Grant::BucketOwner);
            }
        }
    }
    let what = match (action, s.object) {
        (Action::Get, Some((owner, acl))) => format!("the object is {owner}'s with ACL {acl}"),
        _ => format!("the bucket is {}'s with ACL {}", s.bucket_owner, s.access.acl),
    };
    Err(format!("{who} may not {action} {resource}: {what}, and no bucket policy statement grants it"))
}

fn lists(acl: Acl) -> bool {
    matches!(acl, Acl::PublicRead | Acl::PublicReadWrite | Acl::AuthenticatedRead)
}

#[cfg(test)]
mod tests;
