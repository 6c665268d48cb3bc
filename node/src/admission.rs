//! Who gets a connection on one core: caps on connections per principal
//! and in total, and QUIC address validation (a Retry round trip) once
//! many handshakes are under way, so a flood of Initial packets from
//! spoofed addresses costs the node a stateless reply, not a handshake.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use tessera_wire::{Principal, Role};

/// Handshakes in progress on one core above which new clients must prove
/// their address first (QUIC Retry).
pub(crate) const RETRY_ABOVE_HANDSHAKES: u32 = 32;

/// One core's connection counts.
pub(crate) struct Admission {
    per_principal_max: u32,
    total_max: u32,
    total: Cell<u32>,
    handshakes: Cell<u32>,
    by_principal: RefCell<HashMap<Principal, u32>>,
}

/// A held connection slot; dropping it frees the slot.
pub(crate) struct Ticket {
    admission: Rc<Admission>,
    who: Principal,
}

/// A handshake in progress; dropping it ends the count.
pub(crate) struct Handshake {
    admission: Rc<Admission>,
}

impl Admission {
    pub(crate) fn new(per_principal_max: u32, total_max: u32) -> Admission {
        Admission {
            per_principal_max,
            total_max,
            total: Cell::new(0),
            handshakes: Cell::new(0),
            by_principal: RefCell::new(HashMap::new()),
        }
    }

    /// Whether a new client should be asked to validate its address
    /// before the node spends a handshake on it.
    pub(crate) fn wants_retry(&self, validated: bool, may_retry: bool) -> bool {
        !validated && may_retry && self.handshakes.get() >= RETRY_ABOVE_HANDSHAKES
    }

    /// Count a handshake until the guard is dropped.
    pub(crate) fn handshake(self: &Rc<Self>) -> Handshake {
        self.handshakes.set(self.handshakes.get() + 1);
        Handshake { admission: self.clone() }
    }

    /// A slot for a connection of `who`, or why there is none. Nodes are
    /// not capped per principal (a region's nodes connect to every core),
    /// but count towards the total.
    pub(crate) fn admit(self: &Rc<Self>, who: &Principal) -> Result<Ticket, String> {
        if self.total.get() >= self.total_max {
            return Err(format!(
                "this core holds {} connections, its limit (connections_per_core_max); try another node",
                self.total_max
            ));
        }
        let mut by = self.by_principal.borrow_mut();
        let n = by.entry(who.clone()).or_insert(0);
        if who.role != Role::Node && *n >= self.per_principal_max {
            return Err(format!(
                "{who} holds {} connections to this core, its limit (connections_per_principal_max): close \
                 idle clients or share one",
                self.per_principal_max
            ));
        }
        *n += 1;
        self.total.set(self.total.get() + 1);
        Ok(Ticket { admission: self.clone(), who: who.clone() })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let a = &self.admission;
        a.total.set(a.total.get().saturating_sub(1));
        let mut by = a.by_principal.borrow_mut();
        if let Some(n) = by.get_mut(&self.who) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                by.remove(&self.who);
            }
        }
    }
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let a = &self.admission;
        a.handshakes.set(a.handshakes.get().saturating_sub(1));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Random admits and drops against a counting model: a principal never
    /// holds more than its cap (nodes excepted), the total never exceeds
    /// its cap, and every dropped ticket frees exactly its slot.
    #[test]
    fn caps_hold_against_a_model() {
        let a = Rc::new(Admission::new(3, 7));
        let who: Vec<Principal> = [(Role::User, "a"), (Role::User, "b"), (Role::Admin, "c"), (Role::Node, "n")]
            .iter()
            .map(|(r, n)| Principal::new(*r, n).unwrap())
            .collect();
        let mut held: Vec<(usize, Ticket)> = Vec::new();
        let mut seed = 0x9e37_79b9_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed.is_multiple_of(3) && !held.is_empty() {
                held.swap_remove((seed as usize / 3) % held.len());
                continue;
            }
            let i = (seed as usize / 7) % who.len();
            let mine = held.iter().filter(|(j, _)| *j == i).count() as u32;
            let expect = held.len() < 7 && (who[i].role == Role::Node || mine < 3);
            match a.admit(&who[i]) {
                Ok(t) => {
                    assert!(expect, "{} admitted over a cap ({mine} held, {} total)", who[i], held.len());
                    held.push((i, t));
                }
                Err(why) => {
                    assert!(!expect, "{} refused under the caps: {why}", who[i]);
                    assert!(why.contains("limit"), "{why}");
                }
            }
            assert_eq!(a.total.get() as usize, held.len());
        }
        held.clear();
        assert_eq!(a.total.get(), 0);
        assert!(a.by_principal.borrow().is_empty());
    }

    #[test]
    fn retry_only_under_load_and_only_once() {
        let a = Rc::new(Admission::new(1, 1));
        let guards: Vec<Handshake> = (0..RETRY_ABOVE_HANDSHAKES).map(|_| a.handshake()).collect();
        assert!(a.wants_retry(false, true));
        assert!(!a.wants_retry(true, true), "a validated address is not asked again");
        assert!(!a.wants_retry(false, false), "a client that already retried cannot be asked again");
        drop(guards);
        assert!(!a.wants_retry(false, true), "no retry without load");
    }
}
