//! The Tessera storage node: one executor thread per core, each with its own
//! io_uring, QUIC endpoint and storage targets.

pub mod engine;
pub mod io;
