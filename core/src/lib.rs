//! net-gazer's sans-IO core: what the sensor computes, with no I/O.
//!
//! Time is an input ([`time::Timestamp`], from the capture or from the
//! driver's clock), never read here; packets arrive as byte slices and
//! leave as byte vectors. The daemon (`net-gazer`) drives these machines
//! from its capture, socket and output threads.
//!
//! ```text
//! decode ──► track ──► event ◄── trace (engine, trigger, wire)
//!   ▲                   ▲
//! craft (builds packets and capture files)   time (used by all)
//! ```
//!
//! - [`decode`] turns a frame into a validated TCP [`decode::Segment`];
//! - [`track`] follows handshakes, flows and scans: segments and time in,
//!   [`event::Event`]s out;
//! - [`trace`] is the traceroute engine: probes to send and answers read,
//!   with the trigger that decides which handshakes start a trace;
//! - [`event`] is the event schema every output, plugin contract and the
//!   collector derive from ([`event::schema`]);
//! - [`craft`] builds packets and capture files (tests, benchmarks, probes);
//! - [`packet`] holds the header views all of them read and write through.

pub mod craft;
pub mod decode;
pub mod event;
pub mod packet;
pub mod time;
pub mod trace;
pub mod track;
