//! Merging list answers of several targets into one page. Pure.
//!
//! Each target returns up to `limit` items (keys or common prefixes) after
//! the same `start_after`, in order. The first `limit` items of the merged,
//! de-duplicated sequence are exactly the first `limit` items overall: a
//! target that was cut off has no unseen item sorting before its last one.
//! A key listed by several targets (shards of one group) keeps its newest
//! version; a key whose newest version is a delete marker is left out, so a
//! target that has not yet seen a delete cannot resurrect the key.

use tessera_wire::{BucketInfo, ListBucketsOk, ListEntry, ListOk, ListVersionsOk, VersionId};

/// Merge version listings: (key ascending, version newest first), each
/// (key, version) once, cut at `limit`; returns the page and where the next
/// one starts.
pub fn merge_version_pages(pages: Vec<ListVersionsOk>, limit: usize) -> (Vec<ListEntry>, Option<(String, VersionId)>) {
    let any_truncated = pages.iter().any(|p| p.truncated);
    let mut all: Vec<ListEntry> = pages.into_iter().flat_map(|p| p.entries).collect();
    all.sort_by(|a, b| a.key.cmp(&b.key).then(b.version.cmp(&a.version)));
    all.dedup_by(|a, b| a.key == b.key && a.version == b.version);
    let more = any_truncated || all.len() > limit;
    all.truncate(limit);
    let next = if more { all.last().map(|e| (e.key.clone(), e.version)) } else { None };
    (all, next)
}

/// Merge bucket listings of targets in several zones: each name once, in
/// order, cut at `limit`; returns the page and the name the next page
/// starts after. A zone that missed a bucket (down when it was made) is
/// covered by the other zone's answer.
pub fn merge_bucket_pages(pages: Vec<ListBucketsOk>, limit: usize) -> (Vec<BucketInfo>, Option<String>) {
    let any_truncated = pages.iter().any(|p| p.truncated);
    let mut all: Vec<BucketInfo> = pages.into_iter().flat_map(|p| p.buckets).collect();
    all.sort_by(|a, b| a.name.cmp(&b.name));
    all.dedup_by(|a, b| a.name == b.name);
    let more = any_truncated || all.len() > limit;
    all.truncate(limit);
    let next = if more { all.last().map(|b| b.name.clone()) } else { None };
    (all, next)
}

/// One merged page: entries, common prefixes, and the continuation token
/// (the last item returned) when there is more.
pub fn merge_pages(pages: Vec<ListOk>, limit: usize) -> (Vec<ListEntry>, Vec<String>, Option<String>) {
    enum Item {
        Key(ListEntry),
        Prefix(String),
    }
    let name = |i: &Item| match i {
        Item::Key(e) => e.key.clone(),
        Item::Prefix(p) => p.clone(),
    };
    let any_truncated = pages.iter().any(|p| p.truncated);
    let mut items: Vec<Item> = Vec::new();
    for p in pages {
        items.extend(p.entries.into_iter().map(Item::Key));
        items.extend(p.common_prefixes.into_iter().map(Item::Prefix));
    }
    let version = |i: &Item| match i {
        Item::Key(e) => std::cmp::Reverse(e.version),
        Item::Prefix(_) => std::cmp::Reverse(tessera_wire::VersionId(0)),
    };
    items.sort_by(|a, b| name(a).cmp(&name(b)).then(version(a).cmp(&version(b))));
    items.dedup_by(|a, b| name(a) == name(b));
    let more = any_truncated || items.len() > limit;
    items.truncate(limit);
    let token = if more { items.last().map(&name) } else { None };
    let mut entries = Vec::new();
    let mut prefixes = Vec::new();
    for i in items {
        match i {
            Item::Key(e) if e.delete_marker => {}
            Item::Key(e) => entries.push(e),
            Item::Prefix(p) => prefixes.push(p),
        }
    }
    (entries, prefixes, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(k: &str) -> ListEntry {
        ListEntry {
            key: k.into(),
            version: VersionId(1),
            size_bytes: 1,
            created_ms: 0,
            content_crc32c: 0,
            storage_class: Default::default(),
            delete_marker: false,
        }
    }

    /// Paging merged answers of targets that each hold a different subset
    /// yields their union, each name once, in order, for every page size.
    #[test]
    fn bucket_pages_merge_to_the_union_of_what_targets_hold() {
        let mut seed = 3u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        for _ in 0..200 {
            let universe: Vec<String> = (0..next() % 30).map(|i| format!("b{i:03}")).collect();
            let targets: Vec<Vec<&String>> =
                (0..1 + next() % 3).map(|_| universe.iter().filter(|_| next() % 3 != 0).collect()).collect();
            let mut want: Vec<&String> = targets.iter().flatten().copied().collect();
            want.sort();
            want.dedup();
            let limit = 1 + (next() % 7) as usize;
            let (mut got, mut after) = (Vec::new(), None::<String>);
            loop {
                let pages = targets
                    .iter()
                    .map(|held| {
                        let rest: Vec<&&String> =
                            held.iter().filter(|n| after.as_ref().is_none_or(|a| **n > a)).collect();
                        ListBucketsOk {
                            buckets: rest
                                .iter()
                                .take(limit)
                                .map(|n| BucketInfo {
                                    name: (**n).clone(),
                                    versioned: false,
                                    owner: "o".into(),
                                    created_ms: 0,
                                    storage_class: Default::default(),
                                })
                                .collect(),
                            truncated: rest.len() > limit,
                        }
                    })
                    .collect();
                let (page, token) = merge_bucket_pages(pages, limit);
                assert!(page.len() <= limit);
                got.extend(page.into_iter().map(|b| b.name));
                match token {
                    Some(t) => after = Some(t),
                    None => break,
                }
            }
            let want: Vec<String> = want.into_iter().cloned().collect();
            assert_eq!(got, want, "limit {limit}");
        }
    }

    #[test]
    fn newest_version_wins_and_markers_hide_keys() {
        let mut old = entry("k");
        old.version = VersionId(5);
        let mut marker = entry("k");
        marker.version = VersionId(9);
        marker.delete_marker = true;
        let mut newer = entry("j");
        newer.version = VersionId(7);
        let a = ListOk { entries: vec![entry("j"), old], common_prefixes: vec![], truncated: false };
        let b = ListOk { entries: vec![newer, marker], common_prefixes: vec![], truncated: false };
        let (entries, _, token) = merge_pages(vec![a, b], 10);
        assert_eq!(entries.len(), 1);
        assert_eq!((entries[0].key.as_str(), entries[0].version), ("j", VersionId(7)));
        assert_eq!(token, None);
    }

    /// Versions of a key seen by several targets merge into one ordered,
    /// de-duplicated run.
    #[test]
    fn version_pages_merge() {
        let e = |k: &str, v: u128| ListEntry { version: VersionId(v), ..entry(k) };
        let a = ListVersionsOk { entries: vec![e("a", 3), e("a", 1), e("b", 2)], truncated: true };
        let b = ListVersionsOk { entries: vec![e("a", 3), e("a", 2)], truncated: false };
        let (entries, next) = merge_version_pages(vec![a, b], 3);
        let got: Vec<_> = entries.iter().map(|e| (e.key.as_str(), e.version.0)).collect();
        assert_eq!(got, [("a", 3), ("a", 2), ("a", 1)]);
        assert_eq!(next, Some(("a".into(), VersionId(1))));
    }

    #[test]
    fn merges_in_order_dedups_prefixes_and_cuts_at_limit() {
        let a = ListOk { entries: vec![entry("a"), entry("d")], common_prefixes: vec!["p/".into()], truncated: true };
        let b = ListOk { entries: vec![entry("b")], common_prefixes: vec!["p/".into()], truncated: false };
        let (entries, prefixes, token) = merge_pages(vec![a, b], 3);
        let keys: Vec<_> = entries.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b", "d"]);
        assert!(prefixes.is_empty());
        assert_eq!(token.as_deref(), Some("d"));
        let c = ListOk { entries: vec![entry("x")], common_prefixes: vec!["p/".into()], truncated: false };
        let (_, prefixes, token) = merge_pages(vec![c], 10);
        assert_eq!(prefixes, ["p/"]);
        assert_eq!(token, None);
    }
}
