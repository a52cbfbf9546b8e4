//! `osiris log FILE`: what a durable group's log holds, read only.

use std::path::Path;

use osiris_core::durable::{describe, recover};
use osiris_log::format;
use osiris_runtime::RuntimeError;

pub fn run(file: &Path) -> Result<(), RuntimeError> {
    let image = std::fs::read(file)
        .map_err(|error| RuntimeError::Durable(format!("{}: {error}", file.display())))?;
    let scan = format::scan(&image)
        .map_err(|error| RuntimeError::Durable(format!("{}: {error:?}", file.display())))?;
    let first = scan.header.first_lsn.0;
    for (index, range) in scan.records.iter().enumerate() {
        println!(
            "{} {}",
            first + index as u64,
            describe(&image[range.clone()])
        );
    }
    if let Some(damage) = &scan.damage {
        println!(
            "damaged tail at byte {} ({} bytes): {}",
            damage.offset,
            image.len() as u64 - damage.offset,
            damage.reason
        );
    }
    let records = scan.records.iter().map(|range| &image[range.clone()]);
    match recover(records) {
        Ok(sequence) => println!("recovers {} SafeSends", sequence.len()),
        Err(error) => println!("does not recover: {error}"),
    }
    Ok(())
}
