//! Sharing a bucket as a new user would, through the CLI against a real
//! `tessera dev` region (6+6 over three zones, so a tiny object leaves
//! some targets without a shard): issue a second user's identity, then
//! canned ACLs on objects and buckets, and a bucket policy with a grant
//! and an explicit deny. Every refusal exits 7 and names the principal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{port_base, tessera, Region};

/// Run `tessera --config CONFIG ARGS`: exit code and stdout + stderr.
fn as_user(config: &Path, args: &[&str]) -> (i32, String) {
    let out = tessera().arg("--config").arg(config).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (code, text) = as_user(config, args);
    assert_eq!(code, 0, "{args:?}: {text}");
    text
}

fn refused(config: &Path, args: &[&str], must_say: &str) {
    let (code, text) = as_user(config, args);
    assert_eq!(code, 7, "{args:?} should be refused: {text}");
    assert!(text.contains(must_say), "{args:?}: {text:?} should say {must_say:?}");
}

#[test]
fn owners_share_buckets_with_acls_and_policies_through_the_cli() {
    let region = Region::new("sharing", port_base(0), &[]);
    let (dev, admin) = (region.dir.join("client.toml"), region.dir.join("admin.toml"));
    let ca_key = region.dir.join("tls/ca.key");

    // A second user, issued from the region's CA.
    let issued = ok(&dev, &["admin", "cert", "issue", "bob", "--ca-key", ca_key.to_str().unwrap()]);
    assert!(issued.contains("issued user:bob"), "{issued}");
    let bob = region.dir.join("bob.toml");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(region.dir.join("bob.key")).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "bob's key is private");
    let (code, text) = as_user(&dev, &["admin", "cert", "issue", "bob", "--ca-key", ca_key.to_str().unwrap()]);
    assert_eq!(code, 2, "an identity is issued once: {text}");
    let (code, text) =
        as_user(&dev, &["admin", "cert", "issue", "n9", "--role", "node", "--ca-key", ca_key.to_str().unwrap()]);
    assert_eq!(code, 2, "node identities come from the PKI setup: {text}");

    // Objects: private by default, public-read when asked.
    let tiny = region.dir.join("tiny.txt");
    std::fs::write(&tiny, b"hi\n").unwrap();
    let tiny = tiny.to_str().unwrap();
    ok(&dev, &["mb", "photos"]);
    ok(&dev, &["put", tiny, "photos/private.txt"]);
    ok(&dev, &["put", "--acl", "public-read", tiny, "photos/public.txt"]);
    assert_eq!(ok(&bob, &["get", "photos/public.txt"]), "hi\n");
    refused(
        &bob,
        &["get", "photos/private.txt"],
        "user:bob may not get photos/private.txt: the object is dev's with ACL private",
    );
    refused(&bob, &["ls", "photos"], "user:bob may not list photos");
    refused(&bob, &["acl", "photos", "public-read-write"], "user:bob may not acl photos");

    // The bucket: public-read lists for everyone, writes stay the owner's.
    let acl = ok(&dev, &["acl", "photos", "public-read"]);
    assert!(acl.contains("acl:     public-read") && acl.contains("owner:   dev"), "{acl}");
    let listing = ok(&bob, &["ls", "photos"]);
    assert!(listing.contains("private.txt") && listing.contains("public.txt"), "{listing}");
    refused(&bob, &["put", tiny, "photos/bob.txt"], "user:bob may not put photos/bob.txt");
    refused(&bob, &["get", "photos/private.txt"], "the object is dev's with ACL private");

    // A policy: bob writes and reads under shared/, nobody deletes.
    let policy = region.dir.join("share.json");
    std::fs::write(
        &policy,
        r#"{"Statement": [
            {"Effect": "Allow", "Principal": {"Tessera": ["user:bob"]}, "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": "arn:aws:s3:::photos/shared/*"},
            {"Sid": "no-deletes", "Effect": "Deny", "Principal": "*", "Action": "delete", "Resource": "photos/*"}]}"#,
    )
    .unwrap();
    refused(&bob, &["policy", "photos", "--set", policy.to_str().unwrap()], "user:bob may not acl photos");
    ok(&dev, &["policy", "photos", "--set", policy.to_str().unwrap()]);
    let shown = ok(&dev, &["policy", "photos"]);
    assert!(shown.contains("\"no-deletes\"") && shown.contains("photos/shared/*"), "{shown}");
    ok(&bob, &["put", tiny, "photos/shared/bob.txt"]);
    assert_eq!(ok(&bob, &["get", "photos/shared/bob.txt"]), "hi\n");
    refused(&bob, &["put", tiny, "photos/elsewhere.txt"], "user:bob may not put photos/elsewhere.txt");
    // S3's classic model: the bucket owner reads what others wrote only if
    // they said so (bucket-owner-read or -full-control).
    refused(&dev, &["get", "photos/shared/bob.txt"], "the object is bob's with ACL private");
    ok(&bob, &["put", "--acl", "bucket-owner-full-control", tiny, "photos/shared/for-dev.txt"]);
    assert_eq!(ok(&dev, &["get", "photos/shared/for-dev.txt"]), "hi\n");
    // The deny binds the owner too; an admin is not bound.
    refused(&dev, &["rm", "photos/public.txt"], "statement 2 (\"no-deletes\") denies it");
    refused(&bob, &["rm", "photos/shared/bob.txt"], "statement 2 (\"no-deletes\") denies it");
    ok(&admin, &["rm", "photos/public.txt"]);
    // The owner can always lift its own policy.
    ok(&dev, &["policy", "photos", "--delete"]);
    ok(&dev, &["rm", "photos/private.txt"]);
    refused(&bob, &["put", tiny, "photos/shared/again.txt"], "user:bob may not put photos/shared/again.txt");
}
