//! Simulated anti-entropy: every 250 ms, each placement group's members
//! list their versions; the product's `plan_key` decides the fixes, which
//! travel as messages (and can be lost like any other). Rebuilds need k
//! intact sources readable at that moment, as the node's rebuild does.

use tessera_wire::repair::{plan_key, Fix, VersionState};
use tessera_wire::VersionId;

use crate::net::{Msg, World};
use crate::Bug;

pub(crate) struct RepairOp {
    members: Vec<usize>,
    lists: Vec<Option<Vec<(u32, VersionId, VersionState)>>>,
    deadline: u64,
}

/// One round: a list request to every member of every group.
pub(crate) fn start_round(w: &mut World<'_>) {
    for pg in 0..w.region.placement.groups() {
        let op = w.next_op;
        w.next_op += 1;
        let members: Vec<usize> = w.region.placement.targets(pg).iter().map(|t| t.0 as usize - 1).collect();
        for (i, &t) in members.iter().enumerate() {
            w.send(t, op, i, Msg::List { pg });
        }
        let n = members.len();
        w.add_repair(op, RepairOp { members, lists: vec![None; n], deadline: w.now + 100 });
    }
}

pub(crate) fn on_reply(w: &mut World<'_>, op: u64, shard: usize, msg: Msg) {
    if let (Some(crate::client::Op::Repair(r)), Msg::ListAns { entries }) = (w.ops.get_mut(&op), msg) {
        r.lists[shard] = Some(entries);
        if r.lists.iter().all(|l| l.is_some()) {
            plan(w, op);
        }
    }
}

pub(crate) fn on_tick(w: &mut World<'_>, op: u64) {
    let due = matches!(w.ops.get(&op), Some(crate::client::Op::Repair(r)) if w.now >= r.deadline);
    if due {
        plan(w, op);
    } else if w.ops.contains_key(&op) {
        w.at(10, crate::net::Event::Tick { op });
    }
}

fn plan(w: &mut World<'_>, op: u64) {
    let Some(crate::client::Op::Repair(r)) = w.ops.remove(&op) else { return };
    let keys: std::collections::BTreeSet<u32> = r.lists.iter().flatten().flatten().map(|(k, _, _)| *k).collect();
    for key in keys {
        let per_member: Vec<Option<Vec<(VersionId, VersionState)>>> = r
            .lists
            .iter()
            .map(|l| l.as_ref().map(|es| es.iter().filter(|e| e.0 == key).map(|e| (e.1, e.2)).collect()))
            .collect();
        for p in plan_key(&per_member, false, w.region.k) {
            let readable = p
                .sources
                .iter()
                .filter(|&&i| {
                    let t = r.members[i];
                    w.reachable(t) && w.targets[t].read(key, p.version) == Some(true)
                })
                .count();
            for (i, fix) in p.fixes {
                let rebuild = matches!(fix, Fix::Write | Fix::Rewrite);
                if rebuild && (readable < w.region.k || w.cfg.bug == Some(Bug::NoRebuild)) {
                    continue;
                }
                w.send(r.members[i], op, i, Msg::Fix { key, v: p.version, fix });
            }
        }
    }
}
