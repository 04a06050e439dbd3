//! The pre-authentication Hello exchange (spec §4): both sides write their Hello at once, then read
//! the peer's; bytes after it belong to the message stream.

use syncd_proto::bep;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Errors during the Hello exchange.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelloExchangeError {
    /// The socket failed.
    #[error("I/O during Hello: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed before its Hello was complete.
    #[error("peer closed the connection during Hello")]
    Eof,
    /// The peer's Hello is malformed (bad magic, too long, undecodable).
    #[error("bad Hello: {0}")]
    Decode(#[from] syncd_proto::HelloError),
}

/// Builds our Hello. `device_name` is sent only to devices we know (as Go does).
pub fn our_hello(device_name: &str, client_version: &str) -> bep::Hello {
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(1);
    bep::Hello {
        device_name: device_name.to_string(),
        client_name: syncd_proto::SYNCD_CLIENT_NAME.to_string(),
        client_version: client_version.to_string(),
        // One connection per device (2.x negotiates down to 1 when either side says ≤ 1).
        num_connections: 1,
        timestamp,
    }
}

/// Writes `ours`, reads the peer's Hello. Returns it with any bytes that followed it.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    ours: &bep::Hello,
) -> Result<(bep::Hello, Vec<u8>), HelloExchangeError> {
    let mut out = Vec::new();
    syncd_proto::encode_hello(ours, &mut out);
    stream.write_all(&out).await?;
    stream.flush().await?;
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((hello, used)) = syncd_proto::decode_hello(&buf)? {
            let rest = buf.get(used..).unwrap_or_default().to_vec();
            return Ok((hello, rest));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HelloExchangeError::Eof);
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
