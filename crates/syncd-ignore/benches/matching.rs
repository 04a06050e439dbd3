//! `cargo bench -p syncd-ignore`: 1,000,000 realistic workspace paths against the seed's
//! pattern set and against a 200-pattern set. Target: ≥ 2 M paths/s on one core (seed set).

#![allow(clippy::expect_used)] // a bench whose fixed inputs fail to parse should stop loudly
#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use syncd_ignore::{IgnoreSet, Options};

const PATHS: usize = 1_000_000;

const SEED: &str = ".git\nnode_modules\ndist\n.venv\n__pycache__\n.DS_Store\n*.pyc\n.pytest_cache\n.mypy_cache\ncoverage/\n.next/\n";

/// Deterministic xorshift so every run matches the same paths.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// Paths as a scanner of a mixed JS/Python/Rust monorepo would see them (without pruning, so
/// some lie inside ignored directories).
fn workspace_paths(n: usize) -> Vec<String> {
    let tops = [
        "src",
        "src",
        "src",
        "packages/web",
        "packages/api",
        "backend/app",
        "docs",
        "tests",
        "crates/core",
        "scripts",
        "node_modules",
        ".git",
        "dist",
        ".venv",
        "coverage",
        ".next",
    ];
    let mids = [
        "components",
        "utils",
        "models",
        "views",
        "lib",
        "handlers",
        "internal",
        "hooks",
        "__pycache__",
        "fixtures",
        "assets/img",
        "styles",
        "api/v1",
        "db/migrations",
        "",
    ];
    let names = [
        "index",
        "main",
        "App",
        "server",
        "models",
        "test_views",
        "README",
        "config",
        "Button",
        "helpers",
        "schema",
        "routes",
        "lib",
        "mod",
        "setup",
    ];
    let exts = [
        "ts", "tsx", "js", "py", "pyc", "rs", "md", "json", "css", "png", "toml", "lock", "yml",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let top = rng.pick(&tops);
            let mid = rng.pick(&mids);
            let name = rng.pick(&names);
            let ext = rng.pick(&exts);
            let depth = rng.next() % 3;
            let mut p = String::with_capacity(64);
            p.push_str(top);
            if !mid.is_empty() {
                p.push('/');
                p.push_str(mid);
            }
            for d in 0..depth {
                p.push_str(&format!("/sub{}", (i as u64 + d) % 7));
            }
            p.push('/');
            p.push_str(name);
            p.push('.');
            p.push_str(ext);
            p
        })
        .collect()
}

/// 200 lines of the kinds people write: names, extensions, rooted paths, directory contents,
/// deep globs, a few case-folded and negated lines.
fn two_hundred_patterns() -> String {
    let mut lines = Vec::new();
    for i in 0..200 {
        let line = match i % 10 {
            0 => format!("*.ext{i}"),
            1 => format!("build{i}"),
            2 => format!("/out{i}/"),
            3 => format!("cache{i}/"),
            4 => format!("**/gen{i}/*.tmp"),
            5 => format!("(?i)Thumbs{i}.db"),
            6 => format!("/vendor{i}/**"),
            7 => format!("logs/*{i}.log"),
            8 => format!("(?d)tmp{i}[0-9].bak"),
            _ => format!("!keep{i}.txt"),
        };
        lines.push(line);
    }
    lines.push(SEED.to_owned());
    lines.join("\n")
}

fn no_includes(_: &str) -> std::io::Result<String> {
    Err(std::io::Error::from(std::io::ErrorKind::NotFound))
}

fn run(set: &IgnoreSet, paths: &[String]) -> usize {
    paths
        .iter()
        .filter(|p| set.matched(p, false).is_ignored())
        .count()
}

/// Nanoseconds this thread has spent on a CPU (Linux), so the figure means "one core" even
/// on a shared, busy machine.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn report(name: &str, set: &IgnoreSet, paths: &[String]) {
    black_box(run(set, paths));
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let ignored = black_box(run(set, paths));
    let secs = start.elapsed().as_secs_f64();
    let n = paths.len() as f64;
    let cpu = match (cpu0, thread_cpu_ns()) {
        (Some(a), Some(b)) if b > a => {
            format!(
                ", {:.2} M paths/s per CPU-second",
                n / ((b - a) as f64 / 1e9) / 1e6
            )
        }
        _ => String::new(),
    };
    eprintln!(
        "syncd-ignore {name}: {} paths in {secs:.3} s wall = {:.2} M paths/s{cpu} ({ignored} ignored)",
        paths.len(),
        n / secs / 1e6
    );
}

fn bench(c: &mut Criterion) {
    let paths = workspace_paths(PATHS);
    let seed = IgnoreSet::parse(SEED, &no_includes, Options::default()).expect("seed set parses");
    let big = IgnoreSet::parse(&two_hundred_patterns(), &no_includes, Options::default())
        .expect("200-pattern set parses");
    let folded = Options {
        case_insensitive: true,
        ..Options::default()
    };
    let seed_folded = IgnoreSet::parse(SEED, &no_includes, folded).expect("seed set parses");

    report("seed set (11 lines)", &seed, &paths);
    report(
        "seed set, case-insensitive (macOS/Windows)",
        &seed_folded,
        &paths,
    );
    report("211-line set", &big, &paths);

    let mut group = c.benchmark_group("match_1M_paths");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(PATHS as u64));
    group.bench_function("seed", |b| b.iter(|| run(&seed, &paths)));
    group.bench_function("seed_case_insensitive", |b| {
        b.iter(|| run(&seed_folded, &paths))
    });
    group.bench_function("200_patterns", |b| b.iter(|| run(&big, &paths)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
