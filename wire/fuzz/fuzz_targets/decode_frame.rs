//! Feeds arbitrary bytes to the frame decoder: header, then body by opcode.
//! Any input must give a value or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tessera_wire::{decode_body, FrameHeader, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if let Ok((header, opcode)) = FrameHeader::decode(data) {
        let rest = &data[FRAME_HEADER_LEN..];
        let body_len = (header.body_len.get() as usize).min(rest.len());
        let _ = decode_body(opcode, &rest[..body_len]);
    }
    if let Some((&op, body)) = data.split_first() {
        if let Some(opcode) = tessera_wire::Opcode::from_u8(op) {
            let _ = decode_body(opcode, body);
        }
    }
});
