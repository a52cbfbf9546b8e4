//! Library half of `osiris-tools`: what the `osiris` binary and the
//! multi-process tests share — the member line protocol (`report`) and the
//! driver that starts member processes and reads their lines (`cluster`) and
//! the virtual-synchrony checks over those lines (`check`), the network
//! namespaces that put members on separate hosts (`netns`), and reading
//! back the benchmarks' JSON (`json`).

pub mod check;
pub mod cluster;
pub mod json;
pub mod netns;
pub mod report;
