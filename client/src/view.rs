//! A cluster map ready for routing: the map, its placement table and the
//! address of every target. Built once per epoch.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tessera_wire::{ClusterMap, Geometry, MapSignature, Placement, SignedMap, StorageClass, TargetId, TargetLoc};

use crate::ClientError;

/// The map a client routes by.
#[derive(Debug)]
pub struct MapView {
    /// The map.
    pub map: ClusterMap,
    /// Its placement table.
    pub placement: Placement,
    /// Where every target is.
    pub locs: BTreeMap<TargetId, TargetLoc>,
    /// The signature the map came with (a node passes it on when it takes
    /// the map from the region: nodes take only signed maps).
    pub signature: Option<MapSignature>,
}

impl MapView {
    /// Build (and check) the placement of a map.
    pub fn new(map: ClusterMap) -> Result<MapView, ClientError> {
        map.validate()?;
        let placement = Placement::build(&map)
            .map_err(|e| ClientError::Unavailable { detail: format!("map epoch {} does not place: {e}", map.epoch) })?;
        let locs = map.targets();
        Ok(MapView { map, placement, locs, signature: None })
    }

    /// Build the view of a map received with its signature.
    pub fn from_signed(signed: SignedMap) -> Result<MapView, ClientError> {
        let mut v = MapView::new(signed.map)?;
        v.signature = signed.signature;
        Ok(v)
    }

    /// The map with the signature it came with, as a node takes it.
    pub fn signed(&self) -> Result<SignedMap, ClientError> {
        let mut s = SignedMap::unsigned(self.map.clone())?;
        s.signature = self.signature;
        Ok(s)
    }

    /// Address of the core owning a target.
    pub fn addr(&self, target: TargetId) -> Result<SocketAddr, ClientError> {
        self.locs.get(&target).map(|l| l.addr).ok_or_else(|| ClientError::Unavailable {
            detail: format!("target {target} is not in map epoch {}", self.map.epoch),
        })
    }

    /// Zone name of a target.
    pub fn zone_name(&self, target: TargetId) -> &str {
        self.locs.get(&target).and_then(|l| self.map.zones.get(l.zone)).map(|z| z.name.as_str()).unwrap_or("?")
    }

    /// The write-rule geometry of a group for a class (from the cached
    /// target locations: no per-request walk of the map).
    pub fn geometry(&self, pg: u32, class: StorageClass) -> Geometry {
        let zone_of =
            self.placement.targets(pg).iter().map(|t| self.locs.get(t).map(|l| l.zone).unwrap_or(usize::MAX)).collect();
        Geometry::new(zone_of, usize::from(self.map.classes.of(class).data))
    }

    /// Answers a reader needs from a group to see every acknowledged
    /// version, whatever its class.
    pub fn read_quorum(&self, pg: u32) -> usize {
        [StorageClass::Standard, StorageClass::InfrequentAccess]
            .into_iter()
            .map(|c| self.geometry(pg, c).read_quorum())
            .max()
            .unwrap_or(1)
    }
}
