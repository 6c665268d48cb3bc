//! Merging list answers of several targets into one page. Pure.
//!
//! Each target returns up to `limit` items (keys or common prefixes) after
//! the same `start_after`, in order. The first `limit` items of the merged,
//! de-duplicated sequence are exactly the first `limit` items overall: a
//! target that was cut off has no unseen item sorting before its last one.

use tessera_wire::{ListEntry, ListOk};

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
    items.sort_by_key(&name);
    items.dedup_by(|a, b| name(a) == name(b));
    let more = any_truncated || items.len() > limit;
    items.truncate(limit);
    let token = if more { items.last().map(&name) } else { None };
    let mut entries = Vec::new();
    let mut prefixes = Vec::new();
    for i in items {
        match i {
            Item::Key(e) => entries.push(e),
            Item::Prefix(p) => prefixes.push(p),
        }
    }
    (entries, prefixes, token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_wire::VersionId;

    fn entry(k: &str) -> ListEntry {
        ListEntry { key: k.into(), version: VersionId(1), size_bytes: 1, created_ms: 0, content_crc32c: 0 }
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
