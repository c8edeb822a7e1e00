//! The recommend job on the real data: MovieLens 100K's part joined to the TMDB catalogue,
//! the page's example profiles, and the note written by SmolLM2 (streamed, and stopped).

mod common;

use std::ops::ControlFlow;

use marquee::catalogue::{Catalogue, ColumnMapping, Movie};
use marquee::generate::{Generator, StopReason};
use marquee::recommend::data::latin1;
use marquee::recommend::join::join;
use marquee::recommend::part::RecsPart;
use marquee::recommend::rank::PAGE_NEIGHBOURS;
use marquee::recommend::Dataset;
use marquee::task::recommend::{
    example_profiles, start, Recommend, RecommendRequest, Recommender, EXAMPLE_PROFILES,
};
use marquee::task::{Phase, RunEvent};

fn recommender() -> (Recommender, Vec<Movie>) {
    let items = latin1(&common::asset("movielens/ml-100k.item"));
    let inter = String::from_utf8(common::asset("movielens/ml-100k.inter")).expect("utf-8");
    let dataset = Dataset::parse(&items, &inter).expect("parses");
    let path = common::cache_dir().join("assets/tmdb/movies.csv");
    let tmdb = Catalogue::from_path(&path, &ColumnMapping::default())
        .expect("catalogue")
        .movies;
    let part = RecsPart::build(
        &dataset,
        &join(&dataset.movies, &tmdb),
        &tmdb,
        PAGE_NEIGHBOURS,
    )
    .expect("part");
    // Through its bytes, as the page gets it.
    let part = RecsPart::from_json(&part.to_json().expect("encodes")).expect("decodes");
    (Recommender::new(part, &tmdb), tmdb)
}

#[test]
fn every_example_profile_resolves_and_gets_ten_recommendations_with_sources() {
    let (recommender, tmdb) = recommender();
    let profiles = example_profiles(&recommender.part().movies);
    assert_eq!(profiles.len(), EXAMPLE_PROFILES.len(), "{profiles:?}");
    for profile in &profiles {
        let request = RecommendRequest::new(profile.ratings.clone());
        let started = start(&recommender, &tmdb, None, &request, |_| {}).expect("ranks");
        assert_eq!(started.recommendations.len(), 10, "{}", profile.name);
        assert!(
            !started.recommendations[0].because.is_empty(),
            "{}",
            profile.name
        );
        let rated: Vec<u32> = profile.ratings.iter().map(|r| r.movie).collect();
        assert!(started
            .recommendations
            .iter()
            .all(|r| !rated.contains(&r.item)));
    }
}

#[test]
fn the_note_streams_a_paragraph_about_the_recommendations_and_stop_ends_it() {
    let (recommender, tmdb) = recommender();
    let profile = example_profiles(&recommender.part().movies).remove(0);
    let mut generator =
        Generator::from_llama_gguf(&common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
            .expect("loads");
    marquee::task::prime::<Recommend>(&mut generator).expect("primes");
    let request = RecommendRequest::new(profile.ratings.clone());
    let mut built = None;
    let started = start(
        &recommender,
        &tmdb,
        Some(&mut generator),
        &request,
        |phase| {
            if let Phase::PromptBuilt {
                prompt_tokens,
                context_in_prompt,
            } = phase
            {
                built = Some((prompt_tokens, context_in_prompt));
            }
        },
    )
    .expect("starts");
    let (prompt_tokens, in_prompt) = built.expect("the prompt was built");
    let prompt = started.prompt.expect("a prompt");
    // The budget may drop the last ones; the first always fits.
    assert!(
        (1..=request.note_movies).contains(&in_prompt),
        "{}",
        prompt.text
    );
    assert!(prompt_tokens <= 512);
    let first = recommender.label(started.recommendations[0].item);
    assert!(prompt.text.contains(&first), "{}", prompt.text);
    let mut pieces = String::new();
    let done = started
        .run
        .expect("a run")
        .to_end(&mut generator, |event| {
            if let RunEvent::Text(text) = event {
                pieces.push_str(text);
            }
            ControlFlow::Continue(())
        })
        .expect("generates");
    assert!(!done.text.is_empty());
    assert_eq!(done.text, pieces.trim());
    assert!(
        !done.text.contains("\n\n"),
        "one paragraph: {:?}",
        done.text
    );
    assert!(
        done.cached_prompt_tokens > 0,
        "the primed prefix was reused"
    );

    let started =
        start(&recommender, &tmdb, Some(&mut generator), &request, |_| {}).expect("starts");
    let mut steps = 0;
    let stopped = started
        .run
        .expect("a run")
        .to_end(&mut generator, |_| {
            steps += 1;
            if steps >= 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("stops");
    assert_eq!(stopped.stop, StopReason::Cancelled);
    assert!(stopped.tokens.len() < request.max_tokens);
}
