//! Shared pieces of Strait's benchmarks: workload generators and the report
//! that turns criterion's estimates into a markdown table and a summary line.

pub mod cni;
pub mod report;
pub mod workload;
