//! Retrieval on the real TMDB bundle built by `index-builder build`: known movies are found
//! from paraphrases, HNSW + re-rank agrees with exact search, and damaged bundles are refused.

mod common;

use std::path::Path;

use marquee::bundle::{self, part, FORMAT_VERSION, MANIFEST_FILE};
use marquee::index::SearchMode;
use marquee::retriever::Retriever;
use marquee::Error;

fn retriever() -> Retriever {
    Retriever::open_dir(&common::bundle_dir()).expect("the bundle opens")
}

fn rank_of(r: &Retriever, query: &str, title: &str, mode: SearchMode) -> Option<usize> {
    let matches = r.query(query, 10, mode).expect("query runs");
    let titles: Vec<&str> = matches.iter().map(|m| m.movie.title.as_str()).collect();
    println!("{query:?} ({mode}): {titles:?}");
    titles.iter().position(|t| *t == title).map(|i| i + 1)
}

#[test]
fn paraphrases_find_their_movies() {
    let r = retriever();
    // Paraphrases of TMDB overviews, in the words a visitor might use.
    let cases = [
        (
            "In the future, a paralyzed marine is sent to the alien moon Pandora, where he must \
             choose between following his orders and defending the native civilization",
            "Avatar",
            3,
        ),
        (
            "toys that come to life when nobody is watching",
            "Toy Story 3",
            3,
        ),
        // The first film's overview never says the toys come alive; it still ranks.
        (
            "toys that come to life when nobody is watching",
            "Toy Story",
            10,
        ),
        (
            "a clownfish father crosses the ocean to find his missing son",
            "Finding Nemo",
            3,
        ),
        (
            "an orphan boy learns he is a wizard and goes to a school of magic",
            "Harry Potter and the Philosopher's Stone",
            3,
        ),
        ("a great white shark terrorizes a seaside town", "Jaws", 3),
        (
            "dinosaurs are brought back to life in an island theme park",
            "Jurassic Park",
            3,
        ),
        (
            "a computer hacker learns that reality is a simulation run by machines",
            "The Matrix",
            3,
        ),
    ];
    for (query, title, within) in cases {
        for mode in [SearchMode::Exact, SearchMode::Hnsw] {
            let rank = rank_of(&r, query, title, mode);
            assert!(
                rank.is_some_and(|n| n <= within),
                "{title} at {rank:?} for {query:?} ({mode})"
            );
        }
    }
}

#[test]
fn hnsw_with_rerank_recalls_exact_search() {
    let r = retriever();
    // Real queries: the taglines of 200 movies spread over the catalogue.
    let movies = r.movies();
    let queries: Vec<&str> = movies
        .iter()
        .filter_map(|m| m.tagline.as_deref())
        .step_by(15)
        .take(200)
        .collect();
    assert_eq!(queries.len(), 200);
    let (mut found, mut total) = (0, 0);
    for q in &queries {
        let embedding = r.embedder().embed_query(q).expect("embeds");
        let exact = r
            .search_embedding(&embedding, 10, SearchMode::Exact)
            .expect("exact");
        let hnsw = r
            .search_embedding(&embedding, 10, SearchMode::Hnsw)
            .expect("hnsw");
        let hnsw_ids: Vec<usize> = hnsw.iter().map(|m| m.index).collect();
        found += exact.iter().filter(|m| hnsw_ids.contains(&m.index)).count();
        total += exact.len();
        // Scores are exact in both modes, so a hit's score is the same either way.
        for h in &hnsw {
            if let Some(e) = exact.iter().find(|e| e.index == h.index) {
                assert_eq!(e.score, h.score);
            }
        }
    }
    let recall = found as f64 / total as f64;
    println!("recall@10 of HNSW + re-rank against exact search over 200 queries: {recall:.4}");
    assert!(recall >= 0.99, "recall@10 = {recall}");
}

fn copy_bundle(to: &Path) {
    let from = common::bundle_dir();
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(&from).expect("read bundle dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

#[test]
fn damaged_bundles_are_refused_with_clear_errors() {
    let dir = std::env::temp_dir().join(format!("marquee-damaged-{}", std::process::id()));
    copy_bundle(&dir);
    let manifest = bundle::read_manifest(&dir).expect("manifest");
    let index_file = dir.join(&manifest.part(part::INDEX).expect("index part").file);
    let pristine = std::fs::read(&index_file).expect("index bytes");

    // One flipped bit in the graph.
    let mut bytes = pristine.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&index_file, &bytes).expect("write");
    let err = Retriever::open_dir(&dir)
        .err()
        .expect("corruption is detected");
    assert!(
        matches!(err, Error::PartHash { ref part, .. } if part == "index"),
        "{err}"
    );
    println!("{err}");

    // A truncated download.
    std::fs::write(&index_file, &pristine[..pristine.len() - 100]).expect("write");
    let err = Retriever::open_dir(&dir)
        .err()
        .expect("truncation is detected");
    assert!(matches!(err, Error::PartSize { .. }), "{err}");

    // A bundle from another format version.
    std::fs::write(&index_file, &pristine).expect("write");
    let text = std::fs::read_to_string(dir.join(MANIFEST_FILE)).expect("manifest text");
    let current = format!("\"version\": {FORMAT_VERSION}");
    let newer = text.replacen(&current, &format!("\"version\": {}", FORMAT_VERSION + 1), 1);
    std::fs::write(dir.join(MANIFEST_FILE), newer).expect("write");
    let err = Retriever::open_dir(&dir).err().expect("version is checked");
    assert!(
        matches!(err, Error::BundleVersion { found, .. } if found == u64::from(FORMAT_VERSION) + 1),
        "{err}"
    );

    // A missing part file.
    std::fs::write(dir.join(MANIFEST_FILE), text).expect("write");
    std::fs::remove_file(&index_file).expect("rm");
    assert!(matches!(Retriever::open_dir(&dir), Err(Error::Io { .. })));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_queries_get_errors_not_panics() {
    let r = retriever();
    assert!(matches!(
        r.query("", 5, SearchMode::Hnsw),
        Err(Error::EmptyQuery)
    ));
    assert!(matches!(
        r.query("x", 0, SearchMode::Exact),
        Err(Error::InvalidArgument(_))
    ));
    let all = r
        .query("space", r.movies().len() + 10, SearchMode::Hnsw)
        .expect("k > n");
    assert_eq!(all.len(), r.movies().len());
}
