//! Validation speed on the vendored AsyncAPI corpus (`tests/corpus`: spec-examples-2.6,
//! spec-examples-3.1, the TCK and public-crossed-refs), against the official JavaScript parser,
//! which took about 91 s for 360 of the corpus files (all but public-crossed-refs) in one Node.js
//! process on a 2-core machine (`tests/corpus/README.md`).
//!
//! Two passes, each repeated `BENCH_RUNS` times (default 5) after one untimed warm-up:
//!
//! * **folder**: one `compile(&[tests/corpus], lint)` call over the whole folder, as CI runs it;
//! * **per file**: every `.yaml`/`.yml`/`.json` file compiled on its own, one `compile` call each
//!   (the way the official parser was driven: one document at a time, nothing shared).
//!
//! Prints figures; asserts nothing. Run with `cargo bench -p portico-compiler --bench corpus`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use portico_compiler::{compile, Compilation, Options, Severity};

/// Wall time of the official parser (`@asyncapi/parser` 3.6.6) over the same corpus.
const OFFICIAL_PARSER_SECONDS: f64 = 91.0;

/// What one pass found, to show that every pass did the same work.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    documents: usize,
    errors: usize,
    warnings: usize,
    infos: usize,
}

impl Counts {
    fn add(&mut self, out: &Compilation) {
        self.documents += out.documents.len();
        for d in &out.diagnostics {
            match d.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
                Severity::Info => self.infos += 1,
            }
        }
    }

    fn diagnostics(&self) -> usize {
        self.errors + self.warnings + self.infos
    }
}

/// The spec files under `dir`, found the way the compiler's folder discovery finds them.
fn spec_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            if name.starts_with('.') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if [".yaml", ".yml", ".json"].iter().any(|e| name.ends_with(e)) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn options() -> Options {
    Options {
        lint: true,
        ..Options::default()
    }
}

fn folder_pass(corpus: &Path) -> Counts {
    let out = compile(&[corpus.to_path_buf()], &options());
    let mut counts = Counts::default();
    counts.add(&out);
    black_box(out);
    counts
}

fn per_file_pass(files: &[PathBuf]) -> Counts {
    let options = options();
    let mut counts = Counts::default();
    for file in files {
        let out = compile(std::slice::from_ref(file), &options);
        counts.add(&out);
        black_box(out);
    }
    counts
}

struct Stats {
    min: Duration,
    median: Duration,
    max: Duration,
}

fn stats(mut times: Vec<Duration>) -> Stats {
    times.sort();
    let n = times.len();
    let median = if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2
    };
    Stats {
        min: times[0],
        median,
        max: times[n - 1],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Times `runs` passes of `pass` after one untimed warm-up (file cache, lazy statics).
fn measure(name: &str, files: usize, runs: usize, mut pass: impl FnMut() -> Counts) -> Stats {
    let counts = pass();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let again = pass();
        times.push(start.elapsed());
        if again != counts {
            println!("  note: pass results differ between runs: {counts:?} vs {again:?}");
        }
    }
    let s = stats(times);
    let median = s.median.as_secs_f64();
    println!("{name}:");
    println!(
        "  documents {}, diagnostics {} ({} errors, {} warnings, {} infos)",
        counts.documents,
        counts.diagnostics(),
        counts.errors,
        counts.warnings,
        counts.infos
    );
    println!(
        "  wall time per pass over {runs} runs: min {}, median {}, max {}",
        ms(s.min),
        ms(s.median),
        ms(s.max)
    );
    println!(
        "  {:.0} files/s (median); {:.0}x faster than the official parser's {OFFICIAL_PARSER_SECONDS:.0} s",
        files as f64 / median,
        OFFICIAL_PARSER_SECONDS / median
    );
    s
}

fn main() {
    // `cargo bench` passes `--bench` (and any filter); this harness takes no arguments.
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/corpus");
    let corpus = portico_compiler::files::normalize(&corpus);
    let runs = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5);
    let files = spec_files(&corpus);
    let bytes: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "corpus {}: {} files (.yaml/.yml/.json), {:.1} KiB; lint mode; {runs} timed runs after 1 warm-up",
        corpus.display(),
        files.len(),
        bytes as f64 / 1024.0
    );
    // The official parser's 91 s is for the files `verdicts.tsv` lists; say how many those are.
    let listed = std::fs::read_to_string(corpus.join("verdicts.tsv")).unwrap_or_default();
    let listed: std::collections::HashSet<&str> = listed
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split('\t').next())
        .collect();
    let listed_files: Vec<String> = files
        .iter()
        .filter_map(|f| f.strip_prefix(&corpus).ok())
        .map(|f| f.to_string_lossy().replace('\\', "/"))
        .filter(|f| listed.contains(f.as_str()))
        .collect();
    // public-crossed-refs/ was added after the official parser was timed.
    let timed = listed_files
        .iter()
        .filter(|f| !f.starts_with("public-crossed-refs/"))
        .count();
    println!(
        "  {} of them are listed in verdicts.tsv; the official parser took {OFFICIAL_PARSER_SECONDS:.0} s for {timed} of those \
         (all but public-crossed-refs/); file by file, fragments are named explicitly and so also get `asyncapi-missing`",
        listed_files.len()
    );
    measure("whole folder (one compile call)", files.len(), runs, || {
        folder_pass(&corpus)
    });
    measure(
        "file by file (one compile call per file)",
        files.len(),
        runs,
        || per_file_pass(&files),
    );
}
