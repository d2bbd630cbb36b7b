//! `scripts/bench ingress`: `strait ingress` against nginx-light serving the
//! same Ingress rules over the same echo backends (see
//! `bin/bench-ingress.rs`).

pub mod load;
pub mod procs;
pub mod setup;
