//! Library half of `osiris-tools`: what the `osiris` binary and the
//! multi-process tests share — the member line protocol (`report`) and the
//! driver that starts member processes and reads their lines (`cluster`).

pub mod cluster;
pub mod report;
