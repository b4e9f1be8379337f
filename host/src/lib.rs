//! net-gazer: passive TCP handshake measurement for gateways.
//!
//! The modules follow the pipeline:
//!
//! ```text
//! capture ──► decode ──► track ──► outputs
//! (live AF_PACKET +      (sans-IO   (JSON lines)
//!  kernel BPF; pcap,      state
//!  pcap-ng files)         machines)
//! ```
//!
//! - [`capture`] reads frames from an interface or a file;
//! - [`decode`] turns a frame into a validated TCP [`decode::Segment`];
//! - [`track`] follows handshakes, flows and scans: segments and time in,
//!   [`event::Event`]s out, no I/O;
//! - [`output`] writes events off the capture thread;
//! - [`pipeline`] wires one to the next; [`app`] holds the commands;
//! - [`config`] and [`cli`] are the settings; [`craft`] builds packets and
//!   capture files for tests, benchmarks and probes;
//! - [`fuzzing`] holds the bodies of the fuzz targets (`fuzz/`), which the
//!   tests replay on their corpora.

pub mod app;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod fuzzing;
pub mod metrics;
pub mod output;
pub mod pipeline;
pub mod plugin;
pub mod trace;

/// The sans-IO core (crate `net-gazer-core`), under the paths the daemon
/// has always used.
pub use net_gazer_core::{craft, decode, event, time, track};
