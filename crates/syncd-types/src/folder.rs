use std::fmt;

/// A folder's identifier, shared by every device in the cluster (e.g. `workspaces`).
///
/// Syncthing allows any string; we refuse only the empty string, control characters and
/// overlong IDs, which no valid configuration produces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FolderId(String);

/// Why a string is not a valid [`FolderId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FolderIdError {
    /// The ID is empty.
    #[error("folder ID is empty")]
    Empty,
    /// The ID is longer than [`FolderId::MAX_LEN`] bytes.
    #[error("folder ID is {len} bytes long; at most {max} are allowed", max = FolderId::MAX_LEN)]
    TooLong {
        /// The offending length.
        len: usize,
    },
    /// The ID contains a control character.
    #[error("folder ID contains a control character")]
    ControlCharacter,
}

impl FolderId {
    /// The longest folder ID accepted, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates `id` as a folder ID.
    pub fn new(id: impl Into<String>) -> Result<Self, FolderIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(FolderIdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(FolderIdError::TooLong { len: id.len() });
        }
        if id.chars().any(char::is_control) {
            return Err(FolderIdError::ControlCharacter);
        }
        Ok(FolderId(id))
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for FolderId {
    type Err = FolderIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FolderId::new(s)
    }
}

impl AsRef<str> for FolderId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_ids_accept_syncthing_style_ids_and_reject_empty_or_control() {
        assert!(FolderId::new("workspaces").is_ok());
        assert!(FolderId::new("abcd-1234").is_ok());
        assert_eq!(FolderId::new(""), Err(FolderIdError::Empty));
        assert_eq!(FolderId::new("a\nb"), Err(FolderIdError::ControlCharacter));
        assert!(matches!(
            FolderId::new("x".repeat(257)),
            Err(FolderIdError::TooLong { len: 257 })
        ));
    }
}
