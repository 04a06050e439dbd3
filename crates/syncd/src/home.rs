//! Where things live: the syncd home directory, the user's home, `~` expansion, the host name,
//! and the runtime file through which a running daemon tells the CLI its REST address.

use std::path::{Path, PathBuf};

/// The file a running daemon writes into its home with the REST address it bound (`IP:port`),
/// so `syncd status`/`wait`/`device add` find it even when it was started with port 0.
pub const REST_ADDRESS_FILE: &str = "rest-address";

/// The user's home directory (`$HOME`), if known.
pub fn user_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// syncd's default home: `$XDG_CONFIG_HOME/syncd` or `~/.config/syncd`; on macOS
/// `~/Library/Application Support/syncd`.
pub fn default_home() -> Option<PathBuf> {
    if cfg!(target_os = "macos") {
        return user_home().map(|h| h.join("Library/Application Support/syncd"));
    }
    let xdg = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    match xdg {
        Some(x) => Some(x.join("syncd")),
        None => user_home().map(|h| h.join(".config/syncd")),
    }
}

/// Syncthing's default home for `import-syncthing`: on Linux the first of
/// `$XDG_STATE_HOME/syncthing`, `~/.local/state/syncthing`, `$XDG_CONFIG_HOME/syncthing`,
/// `~/.config/syncthing` that holds a `config.xml`; on macOS
/// `~/Library/Application Support/Syncthing`.
pub fn default_syncthing_home() -> Option<PathBuf> {
    let home = user_home();
    if cfg!(target_os = "macos") {
        return home.map(|h| h.join("Library/Application Support/Syncthing"));
    }
    let env_dir = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let candidates: Vec<PathBuf> = [
        env_dir("XDG_STATE_HOME").map(|p| p.join("syncthing")),
        home.as_ref().map(|h| h.join(".local/state/syncthing")),
        env_dir("XDG_CONFIG_HOME").map(|p| p.join("syncthing")),
        home.as_ref().map(|h| h.join(".config/syncthing")),
    ]
    .into_iter()
    .flatten()
    .collect();
    candidates
        .iter()
        .find(|c| c.join("config.xml").is_file())
        .or_else(|| candidates.first())
        .cloned()
}

/// `~` or `~/x` expanded with `$HOME`; other paths unchanged.
pub fn expand_tilde(path: &Path) -> PathBuf {
    let Some(home) = user_home() else {
        return path.to_owned();
    };
    match path.strip_prefix("~") {
        Ok(rest) if rest.as_os_str().is_empty() => home,
        Ok(rest) => home.join(rest),
        Err(_) => path.to_owned(),
    }
}

/// This machine's host name, for the default device name; `syncd` if unknown.
pub fn hostname() -> String {
    let from_file = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| std::env::var("HOSTNAME").ok())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "syncd".to_owned())
}

/// Creates `dir` (and parents); on Unix the last component gets mode 0700 when newly made.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Creates a folder root and its `.stfolder` marker when missing. Existing content is untouched.
pub fn create_folder_root(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    let marker = path.join(syncd_types::names::MARKER);
    if !marker.exists() {
        std::fs::create_dir(&marker)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_root_gets_marker_and_keeps_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a/b");
        create_folder_root(&root).unwrap();
        std::fs::write(root.join("f"), b"x").unwrap();
        create_folder_root(&root).unwrap();
        assert!(root.join(syncd_types::names::MARKER).is_dir());
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"x");
    }

    #[test]
    fn paths_without_tilde_are_unchanged() {
        assert_eq!(expand_tilde(Path::new("/abs/x")), PathBuf::from("/abs/x"));
        assert_eq!(expand_tilde(Path::new("rel/~")), PathBuf::from("rel/~"));
    }
}
