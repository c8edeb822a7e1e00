//! The CLI as a user runs it: `build` on a small CSV with broken rows (using the real
//! MiniLM from the asset cache), then `query` against what it wrote.

use std::path::PathBuf;
use std::process::Command;

fn cache_dir() -> PathBuf {
    std::env::var_os("MARQUEE_CACHE").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/marquee"),
        PathBuf::from,
    )
}

fn builder() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_index-builder"));
    cmd.env("MARQUEE_CACHE", cache_dir());
    cmd
}

const CSV: &str = "\
isbn,name,blurb,published
1,The Sea Wolf,A ship captain rules his crew with cruelty on a sealing voyage.,1904
2,Frankenstein,A scientist builds a living creature from dead bodies and abandons it.,1818
3,Dracula,A vampire count travels from Transylvania to England.,1897
4,Broken,Row with,too many,fields
5,No Blurb,,1900
6,Moby-Dick,A captain hunts the white whale that took his leg.,1851
";

#[test]
fn build_then_query_a_custom_catalogue() {
    let dir = std::env::temp_dir().join(format!("marquee-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let csv = dir.join("books.csv");
    std::fs::write(&csv, CSV).expect("write csv");
    let bundle = dir.join("bundle");

    let out = builder()
        .args(["build", "--catalogue"])
        .arg(&csv)
        .args(["--id-column", "isbn", "--title-column", "name"])
        .args([
            "--text-column",
            "name",
            "--text-column",
            "blurb",
            "--overview-column",
            "blurb",
        ])
        .args([
            "--tagline-column",
            "",
            "--date-column",
            "published",
            "--genres-column",
            "",
        ])
        .arg("--out")
        .arg(&bundle)
        .output()
        .expect("index-builder runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rows: 6 read, 4 kept, 2 skipped"),
        "{stdout}"
    );
    assert!(stdout.contains("malformed CSV record"), "{stdout}");
    assert!(stdout.contains("empty overview"), "{stdout}");
    assert!(stdout.contains("vectors: 4 x 384 dims"), "{stdout}");
    // The default generator ships with every bundle, re-stored as q4_0 for SIMD kernels.
    assert!(stdout.contains("generator-q4_0.gguf"), "{stdout}");
    // ... with the committed tagline adapter as its own part.
    assert!(stdout.contains("tagline-lora.safetensors"), "{stdout}");
    // A catalogue without taglines cannot teach taglines: finetune says so.
    let out = builder()
        .args(["finetune", "--bundle"])
        .arg(&bundle)
        .arg("--out")
        .arg(dir.join("never.safetensors"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no movie has a tagline"), "{stderr}");

    let out = builder()
        .args([
            "query",
            "a whaling captain obsessed with revenge",
            "-k",
            "2",
            "--json",
        ])
        .arg("--bundle")
        .arg(&bundle)
        .output()
        .expect("query runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_string);
    let first: serde_json::Value = serde_json::from_str(&first.expect("a result")).expect("json");
    assert_eq!(first["title"], "Moby-Dick");
    assert_eq!(first["year"], 1851);

    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn clear_errors_for_bad_input() {
    let out = builder()
        .args(["query", "   ", "--bundle"])
        .arg(cache_dir().join("bundle"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("query is empty"));

    let out = builder()
        .args([
            "build",
            "--catalogue",
            "/nonexistent/movies.csv",
            "--out",
            "/tmp/never",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/movies.csv"));

    let out = builder()
        .args(["query", "x", "--mode", "fast", "--bundle", "/tmp"])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("fast"));
}

#[test]
fn quantize_writes_a_gguf_the_engine_loads() {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/gpt2_tiny");
    let out = std::env::temp_dir().join(format!("marquee-gpt2-{}.gguf", std::process::id()));
    let status = builder()
        .arg("quantize")
        .arg(&fixture)
        .args(["--dtype", "q8_0", "-o"])
        .arg(&out)
        .output()
        .expect("runs");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let bytes = std::fs::read(&out).expect("written");
    let model = marquee::generate::Gpt2::from_gguf(&bytes).expect("loads");
    assert_eq!(
        (model.config().n_layer, model.config().vocab_size),
        (2, 512)
    );
    std::fs::remove_file(&out).ok();

    let refused = builder()
        .args(["quantize", "--dtype", "q3_x", "-o", "/tmp/never.gguf"])
        .arg(&fixture)
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("q3_x"));
}

#[test]
fn eval_scores_three_conditions_on_held_out_movies() {
    let out = std::env::temp_dir().join(format!("marquee-eval-{}.md", std::process::id()));
    let run = builder()
        .args(["eval", "--holdout", "2", "--restore", "q8_0", "--bundle"])
        .arg(cache_dir().join("bundle"))
        .arg("--out")
        .arg(&out)
        .output()
        .expect("runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let table = std::fs::read_to_string(&out).expect("table written");
    for row in [
        "| no examples |",
        "| random examples |",
        "| retrieved examples |",
        "| real taglines |",
    ] {
        assert!(table.contains(row), "{row} missing from\n{table}");
    }
    assert!(table.starts_with("2 held-out TMDB movies"), "{table}");
    std::fs::remove_file(&out).ok();
}

/// A few steps on a small slice: the loss falls, the adapter file reads back as what it
/// says it is, and a `--resume` with nothing to resume is refused.
#[test]
fn finetune_trains_a_small_slice_and_writes_an_adapter() {
    let dir = std::env::temp_dir().join(format!("marquee-finetune-{}", std::process::id()));
    let adapter = dir.join("lora.safetensors");
    let run = builder()
        .args([
            "finetune", "--movies", "3", "--epochs", "3", "--lr", "1e-3", "--warmup", "1",
            "--rank", "4", "--bundle",
        ])
        .arg(cache_dir().join("bundle"))
        .arg("--out")
        .arg(&adapter)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let losses: Vec<f64> = stdout
        .lines()
        .filter_map(|l| {
            l.split("mean loss ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert_eq!(losses.len(), 3, "{stdout}");
    assert!(losses[2] < losses[0], "the loss did not fall: {losses:?}");
    let file = marquee::train::file::read(&std::fs::read(&adapter).expect("written"))
        .expect("an adapter file");
    assert_eq!(file.lora.rank, 4);
    assert!(file
        .base_model
        .starts_with("SmolLM2-135M-Instruct.Q4_1.gguf sha256:"));
    assert!(
        file.optimizer.is_none(),
        "the final file is an adapter, not a checkpoint"
    );
    // The adapter drives `tagline`; a damaged one is an error naming it.
    let idea = "A lighthouse keeper befriends a sea creature.";
    let run = builder()
        .args(["tagline", idea, "--max-tokens", "8", "--adapter"])
        .arg(&adapter)
        .output()
        .expect("runs");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let damaged = dir.join("damaged.safetensors");
    let bytes = std::fs::read(&adapter).expect("read");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("write");
    let run = builder()
        .args(["tagline", idea, "--adapter"])
        .arg(&damaged)
        .output()
        .expect("runs");
    assert!(!run.status.success());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("cannot use the adapter") && stderr.contains("damaged.safetensors"),
        "{stderr}"
    );
    let resume = builder()
        .args(["finetune", "--resume", "--movies", "3", "--out"])
        .arg(dir.join("nothing.safetensors"))
        .output()
        .expect("runs");
    assert!(!resume.status.success());
    assert!(String::from_utf8_lossy(&resume.stderr).contains("no checkpoint"));
    std::fs::remove_dir_all(&dir).ok();
}
