#![allow(clippy::unwrap_used, clippy::expect_used, clippy::type_complexity)]

use super::*;
use crate::VersionId;

fn p(role: Role, name: &str) -> Principal {
    Principal { role, name: name.into() }
}

fn access(acl: Acl, policy: Option<&str>) -> BucketAccess {
    BucketAccess { acl, policy: policy.map(|j| Policy::from_json("b", j).expect("test policy")), stamp: VersionId(1) }
}

fn subj<'a>(a: &'a BucketAccess, key: Option<&'a str>, object: Option<(&'a str, Acl)>) -> Subject<'a> {
    Subject { bucket: "b", bucket_owner: "alice", access: a, key, object }
}

const GRANT_BOB: &str = r#"{"Statement":[{"Effect":"Allow","Principal":{"Tessera":["user:bob"]},
    "Action":["s3:GetObject","put","delete"],"Resource":"arn:aws:s3:::b/shared/*"},
    {"Effect":"Allow","Principal":{"Tessera":"bob"},"Action":"list","Resource":"b"}]}"#;
const DENY_ALL: &str = r#"{"Statement":{"Sid":"lock","Effect":"Deny","Principal":"*","Action":"*",
    "Resource":["b","b/*"]}}"#;

#[test]
fn owners_acls_and_policies_decide_as_documented() {
    let alice = p(Role::User, "alice");
    let bob = p(Role::User, "bob");
    let (carol, admin, node, peer, gateway) = (
        p(Role::User, "carol"),
        p(Role::Admin, "ops"),
        p(Role::Node, "n1"),
        p(Role::Peer, "r2"),
        p(Role::Gateway, "alice"),
    );
    let private = access(Acl::Private, None);
    let public = access(Acl::PublicRead, None);
    let rw = access(Acl::PublicReadWrite, None);
    let granted = access(Acl::Private, Some(GRANT_BOB));
    let locked = access(Acl::Private, Some(DENY_ALL));
    let obj = |owner, acl| Some((owner, acl));
    // (principal, action, access, key, object, allowed)
    let cases: Vec<(&Principal, Action, &BucketAccess, Option<&str>, Option<(&str, Acl)>, bool)> = vec![
        (&alice, Action::List, &private, None, None, true),
        (&bob, Action::List, &private, None, None, false),
        (&bob, Action::List, &public, None, None, true),
        (&bob, Action::Put, &public, Some("k"), None, false),
        (&bob, Action::Put, &rw, Some("k"), None, true),
        (&bob, Action::Delete, &rw, Some("k"), None, true),
        (&bob, Action::Acl, &rw, None, None, false),
        (&alice, Action::Acl, &private, None, None, true),
        (&alice, Action::Get, &private, Some("k"), obj("alice", Acl::Private), true),
        (&bob, Action::Get, &private, Some("k"), obj("alice", Acl::Private), false),
        (&bob, Action::Get, &private, Some("k"), obj("alice", Acl::PublicRead), true),
        (&bob, Action::Get, &private, Some("k"), obj("alice", Acl::AuthenticatedRead), true),
        // A public bucket lists; it does not make private objects readable.
        (&bob, Action::Get, &public, Some("k"), obj("alice", Acl::Private), false),
        // Objects others wrote into alice's bucket.
        (&alice, Action::Get, &rw, Some("k"), obj("bob", Acl::Private), false),
        (&alice, Action::Get, &rw, Some("k"), obj("bob", Acl::BucketOwnerRead), true),
        (&alice, Action::Get, &rw, Some("k"), obj("bob", Acl::BucketOwnerFullControl), true),
        (&bob, Action::Get, &rw, Some("k"), obj("carol", Acl::BucketOwnerRead), false),
        // A missing object: NoSuchKey for those who may list, else refused.
        (&bob, Action::Get, &private, Some("k"), None, false),
        (&bob, Action::Get, &public, Some("k"), None, true),
        // Policy grants by prefix and action.
        (&bob, Action::Get, &granted, Some("shared/x"), obj("alice", Acl::Private), true),
        (&bob, Action::Put, &granted, Some("shared/x"), None, true),
        (&bob, Action::Put, &granted, Some("other/x"), None, false),
        (&bob, Action::List, &granted, None, None, true),
        (&bob, Action::Acl, &granted, None, None, false),
        (&carol, Action::Get, &granted, Some("shared/x"), obj("alice", Acl::Private), false),
        // An explicit deny binds the owner too; operators are not bound.
        (&alice, Action::Get, &locked, Some("k"), obj("alice", Acl::Private), false),
        (&alice, Action::List, &locked, None, None, false),
        (&alice, Action::Acl, &locked, None, None, true),
        (&bob, Action::Acl, &locked, None, None, false),
        (&bob, Action::Get, &locked, Some("k"), obj("alice", Acl::PublicRead), false),
        (&admin, Action::Delete, &locked, Some("k"), None, true),
        (&node, Action::Put, &locked, Some("k"), None, true),
        (&peer, Action::Get, &public, Some("k"), obj("alice", Acl::PublicRead), false),
        (&gateway, Action::List, &private, None, None, true),
    ];
    for (i, (who, action, a, key, object, want)) in cases.into_iter().enumerate() {
        let got = decide(who, action, &subj(a, key, object));
        assert_eq!(got.is_ok(), want, "case {i}: {who} {action} key {key:?} object {object:?}: {got:?}");
        if let Err(why) = got {
            assert!(why.contains(&who.to_string()) && why.contains(action.as_str()), "case {i}: {why}");
        }
    }
}

#[test]
fn a_deny_names_its_statement() {
    let locked = access(Acl::PublicRead, Some(DENY_ALL));
    let why = decide(&p(Role::User, "bob"), Action::List, &subj(&locked, None, None)).unwrap_err();
    assert!(why.contains("statement 1 (\"lock\") denies"), "{why}");
}

/// Whatever else a policy and the ACLs say, a matching deny refuses a user
/// and never an operator; and a user outside every statement gets exactly
/// what the ACLs give.
#[test]
fn deny_wins_and_unnamed_users_fall_back_to_acls() {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..2_000 {
        let acl = Acl::ALL[next(6) as usize];
        let action = Action::ALL[next(5) as usize];
        let effect = if next(2) == 0 { "Allow" } else { "Deny" };
        let prefix = ["", "a", "a/b"][next(3) as usize];
        let doc = format!(
            r#"{{"Statement":[{{"Effect":"{effect}","Principal":{{"Tessera":["user:bob"]}},"Action":"{action}","Resource":["b","b/{prefix}*"]}}]}}"#
        );
        let a = access(acl, Some(&doc));
        let plain = access(acl, None);
        let key = ["a/b/c", "a", "z"][next(3) as usize];
        let object = [None, Some(("alice", Acl::ALL[next(6) as usize])), Some(("bob", Acl::Private))][next(3) as usize];
        let s = subj(&a, Some(key), object);
        let bob = p(Role::User, "bob");
        let named = action == Action::List || action == Action::Acl || key.starts_with(prefix);
        let got = decide(&bob, action, &s);
        if named && effect == "Deny" {
            assert!(got.is_err(), "deny must win: {doc} {key} {object:?} {got:?}");
        }
        if named && effect == "Allow" {
            assert_eq!(got, Ok(Grant::Policy));
        }
        let carol = p(Role::User, "carol");
        assert_eq!(
            decide(&carol, action, &s).is_ok(),
            decide(&carol, action, &subj(&plain, Some(key), object)).is_ok()
        );
        assert_eq!(decide(&p(Role::Admin, "ops"), action, &s), Ok(Grant::Operator));
    }
}

#[test]
fn policies_round_trip_through_json() {
    for doc in [GRANT_BOB, DENY_ALL] {
        let p = Policy::from_json("b", doc).unwrap();
        assert_eq!(Policy::from_json("b", &p.to_json()).unwrap(), p);
        p.check("b").unwrap();
    }
}

#[test]
fn policies_that_would_mean_more_than_they_say_are_refused() {
    let bad = [
        (r#"{"Statement":[]}"#, "1 to 16 statements"),
        (r#"[1]"#, "JSON object"),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"get","Resource":"b/*","Condition":{}}}"#,
            "\"Condition\" is not supported",
        ),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"s3:GetBucketTagging","Resource":"b/*"}}"#,
            "unknown action",
        ),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"get","Resource":"other/*"}}"#, "not in bucket"),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"get","Resource":"b/*x"}}"#, "may only end"),
        (r#"{"Statement":{"Effect":"Maybe","Principal":"*","Action":"get","Resource":"b"}}"#, "Effect"),
        (
            r#"{"Statement":{"Effect":"Allow","Principal":{"Tessera":"wizard:x"},"Action":"get","Resource":"b"}}"#,
            "unknown role",
        ),
        (r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":[],"Resource":"b"}}"#, "1 to 16 entries"),
    ];
    for (doc, want) in bad {
        let err = Policy::from_json("b", doc).unwrap_err();
        assert!(err.contains(want), "{doc}: {err}");
    }
    let many: Vec<String> = (0..16)
        .map(|i| {
            format!(r#"{{"Effect":"Allow","Principal":"*","Action":"get","Resource":"b/{}*"}}"#, "x".repeat(200 + i))
        })
        .collect();
    let err = Policy::from_json("b", &format!(r#"{{"Statement":[{}]}}"#, many.join(","))).unwrap_err();
    assert!(err.contains("bytes encoded"), "{err}");
}

#[test]
fn canned_acl_names_round_trip() {
    for a in Acl::ALL {
        assert_eq!(Acl::parse(a.as_str()), Ok(a));
    }
    assert!(Acl::parse("public").unwrap_err().contains("bucket-owner-full-control"));
}
