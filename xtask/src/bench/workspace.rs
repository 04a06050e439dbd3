//! The seeded developer-workspace generator: repositories of small source files, 1–20 MB
//! assets, two large binaries, and ignored `node_modules`/`.git`/`target`/`__pycache__`/`.venv`
//! trees of many tiny files with a `.stignore` excluding them. The same [`Spec`] (seed
//! included) gives byte-identical trees; only mtimes differ.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::rng::Rng;

/// The ignored tool/build directories and the `.stignore` lines that exclude them.
pub const IGNORED_DIRS: [&str; 5] = ["node_modules", ".git", "target", "__pycache__", ".venv"];

const MB: u64 = 1_000_000;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// Approximate bytes of synced (not ignored) file content.
    pub total_bytes: u64,
    /// Number of synced regular files (at least 10).
    pub files: u64,
    /// PRNG seed.
    pub seed: u64,
}

impl Spec {
    /// The default: ~1 GB in 20,000 synced files.
    pub const DEFAULT: Spec = Spec {
        total_bytes: 1_000 * MB,
        files: 20_000,
        seed: 12,
    };
    /// Smoke-run size: ~50 MB in 2,000 synced files.
    pub const QUICK: Spec = Spec {
        total_bytes: 50 * MB,
        files: 2_000,
        seed: 12,
    };
}

/// What was generated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Synced regular files (the `.stignore` itself excluded: it is never synced).
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Files under ignored directories.
    pub ignored_files: u64,
    /// Their total size.
    pub ignored_bytes: u64,
    /// The large binaries, relative to the root.
    pub binaries: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Source-like text (compressible).
    Text,
    /// Random bytes (like compressed media or executables).
    Random,
}

#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    size: u64,
    content: Content,
    ignored: bool,
}

const REPOS: [&str; 12] = [
    "webapp",
    "api-server",
    "ml-pipeline",
    "cli-tool",
    "infra",
    "mobile",
    "docs-site",
    "sdk",
    "game",
    "compiler",
    "etl",
    "dotfiles",
];
const MODULES: [&str; 10] = [
    "core", "util", "net", "db", "ui", "auth", "model", "io", "cache", "jobs",
];
const EXTS: [&str; 6] = ["rs", "py", "ts", "go", "md", "toml"];
const ASSET_EXTS: [&str; 4] = ["png", "jpg", "wav", "pdf"];

/// Plans the whole tree (paths, sizes, content kinds) from the spec alone.
fn plan(spec: &Spec) -> Vec<Entry> {
    let mut rng = Rng::new(spec.seed);
    let files = spec.files.max(10);
    let total = spec.total_bytes.max(files);
    let scale = total as f64 / (1_000 * MB) as f64;
    let mut out = Vec::new();

    // Two large binaries, each 20-30% of the total (200-300 MB at 1 GB).
    let mut used = 0;
    for name in ["bin/app-release.bin", "bin/dataset.tar"] {
        let size = (total as f64 * (0.2 + 0.1 * rng.unit())) as u64;
        used += size;
        out.push(Entry {
            path: PathBuf::from(name),
            size,
            content: Content::Random,
            ignored: false,
        });
    }

    // Assets of 1-20 MB (scaled with the total) until 30% of the total, at most files/10.
    let asset_budget = total * 3 / 10;
    let (amin, amax) = (
        ((MB as f64 * scale) as u64).max(4096),
        ((20.0 * MB as f64 * scale) as u64).max(8192),
    );
    let mut asset_bytes = 0;
    let mut n_assets = 0;
    while asset_bytes < asset_budget && n_assets < files / 10 {
        let size = rng.range(amin, amax).min(asset_budget - asset_bytes).max(1);
        let ext = rng.pick(&ASSET_EXTS).copied().unwrap_or("bin");
        let path = PathBuf::from(format!(
            "assets/set{:02}/asset_{n_assets:05}.{ext}",
            n_assets / 25
        ));
        out.push(Entry {
            path,
            size,
            content: Content::Random,
            ignored: false,
        });
        asset_bytes += size;
        n_assets += 1;
    }
    used += asset_bytes;

    // Source files share the rest, in repositories of nested module directories.
    let n_src = files - 2 - n_assets;
    let src_budget = total.saturating_sub(used).max(n_src);
    let avg = src_budget / n_src.max(1);
    let n_repos = (n_src / 2_500).clamp(3, REPOS.len() as u64);
    for i in 0..n_src {
        let repo = REPOS.get((i % n_repos) as usize).copied().unwrap_or("repo");
        let k = i / n_repos;
        let module = MODULES
            .get((k / 400 % MODULES.len() as u64) as usize)
            .copied()
            .unwrap_or("m");
        let ext = rng.pick(&EXTS).copied().unwrap_or("txt");
        let path = PathBuf::from(format!(
            "repos/{repo}/src/{module}/d{:03}/file_{k:05}.{ext}",
            k / 40
        ));
        let size = rng.range((avg / 4).max(1), (avg * 7 / 4).max(1));
        out.push(Entry {
            path,
            size,
            content: Content::Text,
            ignored: false,
        });
    }

    // Ignored trees: a quarter as many tiny files as synced ones, every kind present.
    let n_ignored = (files / 4).max(IGNORED_DIRS.len() as u64);
    for i in 0..n_ignored {
        let repo = REPOS.get((i % n_repos) as usize).copied().unwrap_or("repo");
        let kind = IGNORED_DIRS
            .get((i % IGNORED_DIRS.len() as u64) as usize)
            .copied()
            .unwrap_or("target");
        let k = i / IGNORED_DIRS.len() as u64;
        let path = match kind {
            "node_modules" => format!(
                "repos/{repo}/node_modules/pkg{:03}/lib/index_{k}.js",
                k / 30
            ),
            ".git" => format!(
                "repos/{repo}/.git/objects/{:02x}/{:038x}",
                k % 256,
                rng.next_u64()
            ),
            "target" => format!("repos/{repo}/target/debug/deps/lib{:03}-{k}.rmeta", k / 50),
            "__pycache__" => format!("repos/{repo}/src/core/__pycache__/mod_{k}.cpython-311.pyc"),
            _ => format!(
                "repos/{repo}/.venv/lib/python3.11/site-packages/pkg{:03}/m_{k}.py",
                k / 30
            ),
        };
        let size = rng.range(50, 2_000);
        out.push(Entry {
            path: PathBuf::from(path),
            size,
            content: Content::Random,
            ignored: true,
        });
    }
    out
}

/// Writes the workspace under `root` (created if missing) and returns what it holds.
pub fn generate(root: &Path, spec: &Spec) -> io::Result<Manifest> {
    let entries = plan(spec);
    let mut m = Manifest::default();
    let mut rng = Rng::new(spec.seed ^ 0x5EED_DA7A);
    let mut buf = vec![0u8; 1 << 20];
    for e in &entries {
        write_file(&root.join(&e.path), e.size, e.content, &mut rng, &mut buf)?;
        if e.ignored {
            m.ignored_files += 1;
            m.ignored_bytes += e.size;
        } else {
            m.files += 1;
            m.bytes += e.size;
            if e.path.starts_with("bin") {
                m.binaries.push(e.path.clone());
            }
        }
    }
    let mut ignore =
        String::from("// Generated by `cargo xtask bench`: tool and build trees are not synced.\n");
    for d in IGNORED_DIRS {
        ignore.push_str(d);
        ignore.push('\n');
    }
    fs::write(root.join(".stignore"), ignore)?;
    Ok(m)
}

/// Writes `n` files of 1–4 KB of text, 100 per directory (scenario 5).
pub fn generate_small_files(root: &Path, n: u64, seed: u64) -> io::Result<Manifest> {
    let mut rng = Rng::new(seed);
    let mut buf = vec![0u8; 8192];
    let mut m = Manifest::default();
    for i in 0..n {
        let size = rng.range(1024, 4096);
        write_file(
            &root.join(format!("d{:04}/f{i:06}.txt", i / 100)),
            size,
            Content::Text,
            &mut rng,
            &mut buf,
        )?;
        m.files += 1;
        m.bytes += size;
    }
    Ok(m)
}

const WORDS: [&str; 24] = [
    "let", "fn", "return", "self", "value", "if", "else", "for", "in", "match", "Some", "None",
    "Ok", "Err", "config", "buffer", "index", "len", "+", "=", "(", ")", "{", "}",
];

/// Writes `size` bytes of the given kind to `path`, creating parent directories.
fn write_file(
    path: &Path,
    size: u64,
    content: Content,
    rng: &mut Rng,
    buf: &mut [u8],
) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut w = BufWriter::with_capacity(1 << 16, fs::File::create(path)?);
    let mut left = size;
    while left > 0 {
        let n = (left.min(buf.len() as u64)) as usize;
        let chunk = buf.get_mut(..n).unwrap_or_default();
        match content {
            Content::Random => rng.fill(chunk),
            Content::Text => fill_text(chunk, rng),
        }
        w.write_all(chunk)?;
        left -= n as u64;
    }
    w.flush()
}

fn fill_text(chunk: &mut [u8], rng: &mut Rng) {
    let mut i = 0;
    let mut col = 0;
    while i < chunk.len() {
        let word = rng.pick(&WORDS).copied().unwrap_or("x");
        let (sep, new_col) = if col > 60 {
            (b'\n', 0)
        } else {
            (b' ', col + word.len() + 1)
        };
        for &b in word.as_bytes().iter().chain(std::iter::once(&sep)) {
            if let Some(d) = chunk.get_mut(i) {
                *d = b;
                i += 1;
            }
        }
        col = new_col;
    }
}

/// Regular files and their bytes under `root`, as a peer would hold them after sync: the
/// folder's internal entries (`.stfolder`, `.stignore`, `.stversions`), temp files
/// (`.syncthing.*.tmp`, `~syncthing~*.tmp`) and the [`IGNORED_DIRS`] are not counted.
pub fn count_synced(root: &Path) -> io::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![(root.to_path_buf(), true)];
    while let Some((dir, top)) = stack.pop() {
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let name = e.file_name();
            let name = name.to_string_lossy();
            if top && matches!(name.as_ref(), ".stfolder" | ".stignore" | ".stversions") {
                continue;
            }
            if IGNORED_DIRS.contains(&name.as_ref()) {
                continue;
            }
            let ft = e.file_type()?;
            if ft.is_dir() {
                stack.push((e.path(), false));
            } else if ft.is_file() {
                let temp = (name.starts_with(".syncthing.") || name.starts_with("~syncthing~"))
                    && name.ends_with(".tmp");
                if !temp {
                    files += 1;
                    bytes += e.metadata()?.len();
                }
            }
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::TempDir;

    const SMALL: Spec = Spec {
        total_bytes: 2 * MB,
        files: 300,
        seed: 99,
    };

    fn listing(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push((
                        p.strip_prefix(root).unwrap().to_path_buf(),
                        fs::read(&p).unwrap(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn same_seed_gives_an_identical_tree() {
        let (a, b) = (
            TempDir::new("gen-a").unwrap(),
            TempDir::new("gen-b").unwrap(),
        );
        let ma = generate(a.path(), &SMALL).unwrap();
        let mb = generate(b.path(), &SMALL).unwrap();
        assert_eq!(ma, mb);
        assert_eq!(listing(a.path()), listing(b.path()));
    }

    #[test]
    fn another_seed_gives_another_tree() {
        let (a, b) = (
            TempDir::new("gen-c").unwrap(),
            TempDir::new("gen-d").unwrap(),
        );
        generate(a.path(), &SMALL).unwrap();
        generate(b.path(), &Spec { seed: 100, ..SMALL }).unwrap();
        assert_ne!(listing(a.path()), listing(b.path()));
    }

    #[test]
    fn every_ignored_tree_is_present_and_listed_in_stignore() {
        let dir = TempDir::new("gen-e").unwrap();
        let m = generate(dir.path(), &SMALL).unwrap();
        let all: Vec<String> = listing(dir.path())
            .into_iter()
            .map(|(p, _)| p.to_string_lossy().into_owned())
            .collect();
        let stignore = fs::read_to_string(dir.path().join(".stignore")).unwrap();
        for d in IGNORED_DIRS {
            assert!(
                all.iter().any(|p| p.split('/').any(|c| c == d)),
                "no file under {d}"
            );
            assert!(stignore.lines().any(|l| l == d), ".stignore lacks {d}");
        }
        assert!(m.ignored_files >= SMALL.files / 4);
    }

    #[test]
    fn manifest_counts_match_the_tree_and_the_spec() {
        let dir = TempDir::new("gen-f").unwrap();
        let m = generate(dir.path(), &SMALL).unwrap();
        assert_eq!(m.files, SMALL.files);
        assert_eq!(count_synced(dir.path()).unwrap(), (m.files, m.bytes));
        assert_eq!(m.binaries.len(), 2);
        // Sizes are drawn around the budget: within 25% of the requested total.
        let (lo, hi) = (SMALL.total_bytes * 3 / 4, SMALL.total_bytes * 5 / 4);
        assert!((lo..=hi).contains(&m.bytes), "{} bytes", m.bytes);
    }

    #[test]
    fn small_files_are_one_to_four_kilobytes() {
        let dir = TempDir::new("gen-g").unwrap();
        let m = generate_small_files(dir.path(), 250, 5).unwrap();
        assert_eq!(count_synced(dir.path()).unwrap(), (250, m.bytes));
        for (_, data) in listing(dir.path()) {
            assert!((1024..=4096).contains(&data.len()));
        }
    }
}
