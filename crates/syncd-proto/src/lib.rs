//! `syncd-proto`: see docs/ARCHITECTURE.md for this crate's job. Under construction: this crate
//! does not yet export anything.
