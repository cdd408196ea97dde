//! Sans-IO HJ 212 (HJ/T 212-2005, HJ 212-2017, HJ 212-2025): bytes in, typed values or
//! precise errors out. No sockets, no clock (`now` is an argument), no files, no metrics.
//!
//! The layers, each with its own error type:
//! 1. [`framer`]: find frames in a byte stream by the length field; resynchronise after garbage.
//! 2. [`crc`]: the HJ 212 checksum and the vendor MODBUS dialects.
//! 3. [`packet`]: data segment → [`Packet`] (header fields, CP items), tolerant of real-world deviations.
//! 4. [`encode`]: replies and host commands; [`split`]: bounded PNUM/PNO reassembly.
//! 5. [`encryption`]: HJ 212-2025 SM4 over the CP content.
//!
//! [`codec`] adapts the framer to `tokio_util::codec`.

pub mod codec;
pub mod crc;
pub mod encode;
pub mod encryption;
pub mod framer;
pub mod model;
pub mod notes;
pub mod packet;
pub mod time;

pub use notes::{Note, Notes};
pub use packet::{CpItem, FactorFields, Packet, ParseError, SegmentText};
