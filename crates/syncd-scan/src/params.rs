//! Hashing parameters, owned by `syncd-proto` and only converted to `usize` here.

/// FastCDC minimum chunk size.
pub const CDC_MIN_SIZE: usize = syncd_proto::cdc::MIN_SIZE as usize;
/// FastCDC average chunk size.
pub const CDC_AVG_SIZE: usize = syncd_proto::cdc::AVG_SIZE as usize;
/// FastCDC maximum chunk size.
pub const CDC_MAX_SIZE: usize = syncd_proto::cdc::MAX_SIZE as usize;

pub use syncd_proto::block_size;
