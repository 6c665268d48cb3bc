//! Feeds arbitrary bytes to the cluster-map decoder (what a node does with
//! a SetMap payload) and builds the placement of any map that validates.
//! Any input must give a map or a typed error, never a panic, and a valid
//! map must always place.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_wire::{ClusterMap, Placement};

fuzz_target!(|data: &[u8]| {
    if let Ok(map) = ClusterMap::from_postcard(data) {
        Placement::build(&map).expect("a validated map must place");
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(map) = ClusterMap::from_toml(text) {
            Placement::build(&map).expect("a validated map must place");
        }
    }
});
