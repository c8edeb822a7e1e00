//! The recommend job without a generator, on a hand-made part (the note itself is tested
//! on the real part and SmolLM2 in `tests/recommend_task.rs`).

use super::*;
use crate::recommend::join::join;
use crate::recommend::Dataset;

const ITEMS: &str = "item_id:token\tmovie_title:token_seq\trelease_year:token\n\
    1\tToy Story\t1995\n2\tUsual Suspects, The\t1995\n3\tFargo\t1996\n4\tHeat\t1995\n";
/// Toy Story and The Usual Suspects are seen together most; Fargo with Heat.
const INTER: &str = "user_id:token\titem_id:token\trating:float\n\
    7\t1\t5\n7\t2\t4\n8\t1\t3\n8\t2\t2\n9\t3\t1\n9\t4\t5\n10\t1\t4\n10\t3\t4\n";

fn catalogue() -> Vec<Movie> {
    vec![Movie {
        id: "629".into(),
        title: "The Usual Suspects".into(),
        year: Some(1995),
        tagline: Some("Five criminals. One line up.".into()),
        overview: "A boat has been destroyed.".into(),
        genres: vec![],
    }]
}

fn recommender() -> Recommender {
    let d = Dataset::parse(ITEMS, INTER).unwrap();
    let tmdb = catalogue();
    let part = RecsPart::build(&d, &join(&d.movies, &tmdb), &tmdb, 10).unwrap();
    Recommender::new(part, &tmdb)
}

fn rated(movie: u32, stars: f32) -> Rated {
    Rated { movie, stars }
}

#[test]
fn ranks_with_the_part_and_names_the_rated_movies_behind_each() {
    let r = recommender();
    let mut phases = Vec::new();
    let request = RecommendRequest {
        n: 2,
        ..RecommendRequest::new(vec![rated(0, 5.0)])
    };
    let started = start(&r, &catalogue(), None, &request, |p| phases.push(p)).unwrap();
    assert_eq!(phases, [Phase::Searched]);
    assert!(started.run.is_none() && started.prompt.is_none());
    let first = &started.recommendations[0];
    assert_eq!(r.label(first.item), "The Usual Suspects (1995)");
    assert_eq!(first.because[0].0, 0);
    assert_eq!(started.recommendations.len(), 2);
    assert!(started.recommendations.iter().all(|rec| rec.item != 0));
    // The part's movie joined the catalogue: its details are there for the note.
    let tmdb = catalogue();
    let details = r.details(first.item, &tmdb).unwrap();
    assert_eq!(
        details.tagline.as_deref(),
        Some("Five criminals. One line up.")
    );
    assert!(r.details(0, &catalogue()).is_none());
    assert_eq!(r.label(99), "movie 99");
}

#[test]
fn bad_ratings_and_settings_say_what_is_wrong() {
    let r = recommender();
    let run = |request: RecommendRequest| {
        start(&r, &catalogue(), None, &request, |_| {})
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    assert!(run(RecommendRequest::default()).contains("no ratings"));
    assert!(run(RecommendRequest::new(vec![rated(42, 4.0)])).contains("movie number 42"));
    let message = run(RecommendRequest::new(vec![rated(2, 6.0)]));
    assert!(
        message.contains("outside 1–5") && message.contains("Fargo"),
        "{message}"
    );
    assert!(run(RecommendRequest::new(vec![rated(2, f32::NAN)])).contains("outside 1–5"));
    let zero = RecommendRequest {
        n: 0,
        ..RecommendRequest::new(vec![rated(0, 4.0)])
    };
    assert!(run(zero).contains("n must be between"));
    let many = RecommendRequest::new(vec![rated(0, 4.0); LIMITS.max_ratings + 1]);
    assert!(run(many).contains("at most"));
    let hot = RecommendRequest {
        temperature: 9.0,
        ..RecommendRequest::new(vec![rated(0, 4.0)])
    };
    assert!(run(hot).contains("temperature"));
}

#[test]
fn a_movie_rated_twice_keeps_its_last_rating() {
    let r = recommender();
    let request = RecommendRequest::new(vec![rated(0, 2.0), rated(2, 4.0), rated(0, 5.0)]);
    assert_eq!(
        request.profile(&r.part().movies).unwrap(),
        [(2, 4.0), (0, 5.0)]
    );
}

#[test]
fn the_note_speaks_of_the_liked_movies_first() {
    let r = recommender();
    assert_eq!(
        liked_titles(&r, &[(2, 3.0), (0, 5.0), (3, 4.0)]),
        ["Toy Story (1995)", "Heat (1995)"]
    );
    // None liked: the best rated stand in.
    assert_eq!(
        liked_titles(&r, &[(2, 1.0), (3, 2.0)]),
        ["Heat (1995)", "Fargo (1996)"]
    );
}

#[test]
fn defaults_are_within_the_limits_and_json_fills_them_in() {
    assert!(RecommendRequest::new(vec![rated(0, 1.0)])
        .validate()
        .is_ok());
    let request: RecommendRequest =
        serde_json::from_str(r#"{"ratings": [{"movie": 3, "stars": 4}], "note": false}"#).unwrap();
    assert_eq!(request.ratings, [rated(3, 4.0)]);
    assert!(!request.note);
    assert_eq!(request.n, RecommendRequest::default().n);
    assert_eq!(Recommend::NAME, "recommend");
    assert_eq!(Recommend::stop_rule(), StopRule::FirstParagraph);
}
