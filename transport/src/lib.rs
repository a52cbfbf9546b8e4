//! osiris-transport: being written.
