//! The committed `include/osiris.h` is what cbindgen makes of the crate now.
//! Fails on any difference; `OSIRIS_BLESS_HEADER=1` rewrites the header.

use std::path::Path;

#[test]
fn committed_header_matches_a_fresh_generation() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("ffi/cbindgen.toml parses");
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut fresh);
    let fresh = String::from_utf8(fresh).expect("the header is UTF-8");
    let committed_path = crate_dir.join("include/osiris.h");
    if std::env::var_os("OSIRIS_BLESS_HEADER").is_some() {
        std::fs::write(&committed_path, &fresh).expect("writes include/osiris.h");
        return;
    }
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    assert!(
        committed == fresh,
        "ffi/include/osiris.h is stale: regenerate it with \
         `OSIRIS_BLESS_HEADER=1 cargo test -p osiris-ffi --test header` and commit it"
    );
    assert!(
        fresh.contains("osiris_send("),
        "the header declares osiris_send"
    );
}
