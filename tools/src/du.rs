//! `tessera du BUCKET`: stored, raw and billable bytes per storage class.
//! IA bills at least 64 KiB per object and at least 30 days of storage: an
//! IA object younger than 30 days is reported with the days still owed if
//! it were deleted now.

use std::collections::BTreeMap;

use tessera_client::{ListEntry, StorageClass};
use tessera_wire::ClassProfiles;

/// IA minimum billable object size.
pub(crate) const IA_MIN_BILLABLE_BYTES: u64 = 64 * 1_024;
/// IA minimum storage duration.
pub(crate) const IA_MIN_DAYS: u64 = 30;
const DAY_MS: u64 = 86_400_000;

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[derive(Default, Debug, Clone, PartialEq)]
pub(crate) struct ClassUsage {
    pub(crate) objects: u64,
    pub(crate) bytes: u64,
    pub(crate) raw_bytes: u64,
    pub(crate) billable_bytes: u64,
    /// Byte-days still owed under the minimum storage rule.
    pub(crate) owed_byte_days: u64,
    pub(crate) young_objects: u64,
}

#[derive(Default, Debug)]
pub(crate) struct Usage {
    pub(crate) by_class: BTreeMap<&'static str, ClassUsage>,
}

impl Usage {
    pub(crate) fn add(&mut self, e: &ListEntry, classes: &ClassProfiles, now_ms: u64) {
        let p = classes.of(e.storage_class);
        let name = match e.storage_class {
            StorageClass::Standard => "standard",
            StorageClass::InfrequentAccess => "infrequent_access",
        };
        let u = self.by_class.entry(name).or_default();
        u.objects += 1;
        u.bytes += e.size_bytes;
        u.raw_bytes += e.size_bytes * p.total() as u64 / u64::from(p.data.max(1));
        match e.storage_class {
            StorageClass::Standard => u.billable_bytes += e.size_bytes,
            StorageClass::InfrequentAccess => {
                let billable = e.size_bytes.max(IA_MIN_BILLABLE_BYTES);
                u.billable_bytes += billable;
                let age_days = now_ms.saturating_sub(e.created_ms) / DAY_MS;
                if age_days < IA_MIN_DAYS {
                    u.young_objects += 1;
                    u.owed_byte_days += billable * (IA_MIN_DAYS - age_days);
                }
            }
        }
    }

    pub(crate) fn report(&self, bucket: &str) -> String {
        let mut s = format!("{bucket}: usage by storage class\n");
        s.push_str(&format!(
            "{:<18} {:>9} {:>15} {:>15} {:>15} {:>22}\n",
            "class", "objects", "bytes", "raw bytes", "billable bytes", "min-duration owed"
        ));
        for (name, u) in &self.by_class {
            s.push_str(&format!(
                "{name:<18} {:>9} {:>15} {:>15} {:>15} {:>14} GiB-days\n",
                u.objects,
                u.bytes,
                u.raw_bytes,
                u.billable_bytes,
                format!("{:.3}", u.owed_byte_days as f64 / (1u64 << 30) as f64)
            ));
        }
        s.push_str(&format!(
            "IA rules: each object bills at least {} KiB and {IA_MIN_DAYS} days of storage.\n",
            IA_MIN_BILLABLE_BYTES / 1_024
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_wire::VersionId;

    fn entry(size: u64, class: StorageClass, created_ms: u64) -> ListEntry {
        ListEntry {
            key: "k".into(),
            version: VersionId(1),
            size_bytes: size,
            created_ms,
            content_crc32c: 0,
            storage_class: class,
            delete_marker: false,
        }
    }

    #[test]
    fn ia_minimums_apply_and_standard_bills_actual_bytes() {
        let classes = ClassProfiles::default();
        let now = 100 * DAY_MS;
        let mut u = Usage::default();
        u.add(&entry(1_000, StorageClass::InfrequentAccess, now - 10 * DAY_MS), &classes, now);
        u.add(&entry(1_000_000, StorageClass::InfrequentAccess, now - 40 * DAY_MS), &classes, now);
        u.add(&entry(1_000, StorageClass::Standard, now), &classes, now);
        let ia = &u.by_class["infrequent_access"];
        assert_eq!(ia.billable_bytes, 65_536 + 1_000_000);
        assert_eq!(ia.young_objects, 1);
        assert_eq!(ia.owed_byte_days, 65_536 * 20);
        assert_eq!(ia.raw_bytes, 1_000 * 12 / 8 + 1_000_000 * 12 / 8);
        let st = &u.by_class["standard"];
        assert_eq!((st.billable_bytes, st.raw_bytes), (1_000, 2_000));
    }
}
