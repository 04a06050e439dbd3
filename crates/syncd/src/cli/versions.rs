//! File versioning on the command line: the `--versioning …` flags of `syncd folder add/set`
//! and `syncd versions list|restore` (through the daemon's `/rest/folder/versions`).

use std::path::Path;

use anyhow::anyhow;
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{CliResult, EXIT_ERROR, EXIT_OK, Failure, require_daemon};
use crate::client::{ClientError, encode_query};
use crate::config::Versioning;

/// The versioning flags of `syncd folder add` and `syncd folder set`.
#[derive(Debug, Clone, Default, Args)]
pub struct VersioningArgs {
    /// File versioning: trashcan, simple, staggered, external, or none (off).
    #[arg(long, value_name = "TYPE")]
    pub versioning: Option<String>,
    /// simple: how many versions of each file are kept (default 5).
    #[arg(long, value_name = "N")]
    pub keep: Option<u32>,
    /// trashcan and simple: versions older than this many days are deleted (0: never).
    #[arg(long, value_name = "DAYS")]
    pub cleanout_days: Option<u32>,
    /// staggered: versions older than this many days are deleted (0: never; default 365).
    #[arg(long, value_name = "DAYS")]
    pub max_age_days: Option<u32>,
    /// external: the command that takes the file away; %FOLDER_PATH% and %FILE_PATH% are
    /// replaced by the folder's path and the file's path in it.
    #[arg(long, value_name = "COMMAND")]
    pub versioning_command: Option<String>,
    /// Where versions are kept (default: .stversions in the folder; relative: in the folder).
    #[arg(long, value_name = "PATH")]
    pub versions_path: Option<String>,
    /// Seconds between cleanups of old versions (0: none; default 3600).
    #[arg(long, value_name = "SECONDS")]
    pub versions_cleanup_interval: Option<u32>,
}

impl VersioningArgs {
    /// Whether any flag was given.
    pub fn any(&self) -> bool {
        self.versioning.is_some()
            || self.keep.is_some()
            || self.cleanout_days.is_some()
            || self.max_age_days.is_some()
            || self.versioning_command.is_some()
            || self.versions_path.is_some()
            || self.versions_cleanup_interval.is_some()
    }

    /// Applies the flags to `v` (a new type starts from that type's defaults) and checks
    /// the result for a folder at `root`.
    pub fn apply(&self, v: &mut Versioning, root: &Path) -> Result<(), Failure> {
        if let Some(t) = &self.versioning {
            let t = if t == "none" { "" } else { t.as_str() };
            if t != v.kind {
                *v = Versioning {
                    kind: t.to_owned(),
                    ..Versioning::default()
                };
            }
        }
        let mut set = |k: &str, val: Option<String>| {
            if let Some(val) = val {
                v.params.insert(k.to_owned(), val);
            }
        };
        set("keep", self.keep.map(|n| n.to_string()));
        set("cleanoutDays", self.cleanout_days.map(|n| n.to_string()));
        set(
            "maxAge",
            self.max_age_days
                .map(|d| (u64::from(d) * 86_400).to_string()),
        );
        set("command", self.versioning_command.clone());
        if let Some(p) = &self.versions_path {
            v.fs_path = p.clone();
        }
        if let Some(n) = self.versions_cleanup_interval {
            v.cleanup_interval_s = n;
        }
        if v.kind.is_empty() && self.any() && self.versioning.is_none() {
            return Err(Failure::usage(anyhow!(
                "versioning is off for this folder: say which with --versioning TYPE"
            )));
        }
        v.to_engine(root)
            .map(|_| ())
            .map_err(|e| Failure::usage(anyhow!("--versioning: {e}")))
    }
}

/// `syncd versions ...` (needs a running daemon).
#[derive(Debug, Subcommand)]
pub enum VersionsCommand {
    /// List the kept versions of a folder's files (newest first).
    List {
        /// The folder ID.
        folder: String,
        /// Only this file, or the files under this directory.
        path: Option<String>,
        /// Print JSON (Syncthing's `/rest/folder/versions` shape).
        #[arg(long)]
        json: bool,
    },
    /// Put a kept version of a file back (a file in its place is versioned first).
    Restore {
        /// The folder ID.
        folder: String,
        /// The file, relative to the folder.
        path: String,
        /// The version's time as `versions list` shows it (RFC 3339; default: the newest).
        #[arg(long, value_name = "TIME")]
        time: Option<String>,
    },
}

fn versions_of(c: &crate::client::Client, folder: &str) -> Result<Value, Failure> {
    match c.get(&format!(
        "/rest/folder/versions?folder={}",
        encode_query(folder)
    )) {
        Ok(v) => Ok(v),
        Err(ClientError::Status { status: 404, .. }) => Err(Failure::usage(anyhow!(
            "no folder `{folder}` (see `syncd folder list`)"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Whether `name` is `path` or under it.
fn under(name: &str, path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p.is_empty() || name == p || name.strip_prefix(p).is_some_and(|r| r.starts_with('/'))
}

/// `syncd versions list|restore`.
pub(super) fn versions_cmd(home: &Path, cmd: VersionsCommand) -> CliResult {
    let (_, _, c) = require_daemon(home)?;
    match cmd {
        VersionsCommand::List { folder, path, json } => {
            let all = versions_of(&c, &folder)?;
            let map: serde_json::Map<String, Value> = all
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| path.as_deref().is_none_or(|p| under(k, p)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if json {
                out!("{}", serde_json::to_string_pretty(&Value::Object(map))?);
                return Ok(EXIT_OK);
            }
            if map.is_empty() {
                out!("No versions kept in `{folder}`.");
            }
            for (name, list) in &map {
                out!("{name}");
                for v in list.as_array().into_iter().flatten() {
                    out!(
                        "  {}  {:>10} bytes  modified {}",
                        v["versionTime"].as_str().unwrap_or("?"),
                        v["size"].as_u64().unwrap_or(0),
                        v["modTime"].as_str().unwrap_or("?"),
                    );
                }
            }
            Ok(EXIT_OK)
        }
        VersionsCommand::Restore { folder, path, time } => {
            let time = match time {
                Some(t) => t,
                None => versions_of(&c, &folder)?
                    .get(&path)
                    .and_then(|l| l.get(0))
                    .and_then(|v| v["versionTime"].as_str())
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        Failure::usage(anyhow!("no version of `{path}` is kept in `{folder}`"))
                    })?,
            };
            let body = json!({ path.clone(): time });
            let errors = match c.json(
                "POST",
                &format!("/rest/folder/versions?folder={}", encode_query(&folder)),
                Some(&body),
            ) {
                Ok(v) => v,
                Err(ClientError::Status { status: 404, .. }) => {
                    return Err(Failure::usage(anyhow!("no folder `{folder}`")));
                }
                Err(e) => return Err(e.into()),
            };
            match errors.get(&path).and_then(Value::as_str) {
                Some(e) => {
                    eprintln!("syncd: restoring `{path}`: {e}");
                    Ok(EXIT_ERROR)
                }
                None => {
                    out!("Restored `{path}` in `{folder}` to its version of {time}.");
                    Ok(EXIT_OK)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_become_syncthing_params() {
        let args = VersioningArgs {
            versioning: Some("simple".into()),
            keep: Some(3),
            cleanout_days: Some(7),
            ..VersioningArgs::default()
        };
        let mut v = Versioning::default();
        args.apply(&mut v, Path::new("/r")).unwrap();
        assert_eq!(v.kind, "simple");
        assert_eq!(
            (v.params["keep"].as_str(), v.params["cleanoutDays"].as_str()),
            ("3", "7")
        );
        let staggered = VersioningArgs {
            versioning: Some("staggered".into()),
            max_age_days: Some(2),
            ..VersioningArgs::default()
        };
        staggered.apply(&mut v, Path::new("/r")).unwrap();
        assert_eq!(v.params.len(), 1, "a new type starts from its defaults");
        assert_eq!(v.params["maxAge"], "172800");
        let bad = VersioningArgs {
            versioning: Some("external".into()),
            ..VersioningArgs::default()
        };
        assert!(bad.apply(&mut v, Path::new("/r")).is_err());
        assert!(under("a/b.txt", "a") && under("a", "a") && !under("ab", "a"));
    }
}
