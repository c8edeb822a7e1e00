//! The Recommend tab's side of the [`Session`]: `openRecs` reads the on-demand recs part
//! the worker fetched when the tab first opened, `recommend` ranks for the visitor's
//! ratings and, asked for the note, starts writing it (stepped by `step` as any generation).

use marquee::catalogue::Movie;
use marquee::recommend::part::RecsPart;
use marquee::recommend::rank::Recommendation;
use marquee::task::recommend::{example_profiles, Rated, Recommend, RecommendRequest};

use super::*;
use crate::protocol::{Because, RecommendedMovie};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
impl Session {
    /// Builds the recommender from the recs part added with `addPart`; returns its titles
    /// (for search), the example profiles it can resolve and its source.
    #[wasm_bindgen(js_name = openRecs)]
    pub fn open_recs(&mut self) -> Result<JsValue, JsError> {
        let retriever = self
            .retriever
            .as_ref()
            .ok_or_else(|| js_error("the models are not loaded yet"))?;
        let bytes = self
            .parts
            .remove(part::RECS)
            .ok_or_else(|| js_error("the recommendations part has not been added"))?;
        let part = RecsPart::from_json(&bytes).map_err(js_error)?;
        let opened = RecsOpened {
            movies: part
                .movies
                .iter()
                .map(|m| RecsTitle {
                    title: m.title.clone(),
                    year: m.year,
                })
                .collect(),
            profiles: example_profiles(&part.movies),
            source: part.source.clone(),
        };
        let recommender = Recommender::new(part, retriever.movies());
        // The note's system turn goes into the KV cache now, while the tab says "loading",
        // instead of into the first note's wait; but not while a tagline is being written:
        // priming runs the model and would pull the KV cache from under it (the first note
        // then prefills its whole prompt).
        if let (Some(generator), None) = (self.generator.as_mut(), self.running.as_ref()) {
            marquee::task::prime::<Recommend>(generator).map_err(js_error)?;
        }
        self.recommender = Some(recommender);
        to_js(&opened)
    }

    /// Runs a `recommend` message: returns the `recommended` event. Without `note` the
    /// generation under way (a tagline, say) goes on untouched; with it, that generation is
    /// dropped (the worker has stopped it) and the note's is kept for `step`.
    pub fn recommend(&mut self, request: JsValue) -> Result<JsValue, JsError> {
        let request: Request = serde_wasm_bindgen::from_value(request).map_err(js_error)?;
        let Request::Recommend { id, recommend } = request else {
            return Err(js_error("not a recommend message"));
        };
        let note = recommend.note && self.generator.is_some();
        if note {
            self.running = None;
            self.use_adapter(AdapterUse::None)?;
            // A no-op once primed (see `open_recs`).
            if let Some(generator) = self.generator.as_mut() {
                marquee::task::prime::<Recommend>(generator).map_err(js_error)?;
            }
        }
        let (Some(recommender), Some(retriever)) =
            (self.recommender.as_ref(), self.retriever.as_ref())
        else {
            return Err(js_error("the recommendations are not loaded yet"));
        };
        let generator = if note { self.generator.as_mut() } else { None };
        let started_ms = now_ms();
        let mut ranked_ms = started_ms;
        let job = marquee::task::recommend::start(
            recommender,
            retriever.movies(),
            generator,
            &recommend,
            |phase| {
                if phase == Phase::Searched {
                    ranked_ms = now_ms();
                }
            },
        )
        .map_err(js_error)?;
        let movies: Vec<RecommendedMovie> = job
            .recommendations
            .iter()
            .map(|r| recommended(recommender, retriever.movies(), r, &recommend))
            .collect();
        let (movies_in_prompt, prompt_tokens) = job
            .prompt
            .as_ref()
            .map_or((0, 0), |p| (p.movies_in_prompt, p.tokens.len()));
        let writing = job.run.is_some();
        if let Some(run) = job.run {
            self.running = Some(Running {
                id,
                task: TaskName::Recommend,
                run,
                started_ms,
                prefill_started_ms: now_ms(),
                first_token_ms: None,
            });
        }
        to_js(&Event::Recommended {
            id,
            task: TaskName::Recommend,
            movies,
            rank_ms: ranked_ms - started_ms,
            note: writing,
            movies_in_prompt,
            prompt_tokens,
        })
    }
}

/// One recommendation with its titles, its catalogue details and the visitor's stars for
/// each rated movie behind it.
fn recommended(
    recommender: &Recommender,
    catalogue: &[Movie],
    rec: &Recommendation,
    request: &RecommendRequest,
) -> RecommendedMovie {
    let movies = &recommender.part().movies;
    let title = |i: u32| {
        movies
            .get(i as usize)
            .map_or_else(|| recommender.label(i), |m| m.title.clone())
    };
    let year = |i: u32| movies.get(i as usize).and_then(|m| m.year);
    // A movie rated twice counts with its last rating, as the engine ranks it.
    let stars = |i: u32| {
        request
            .ratings
            .iter()
            .rev()
            .find(|r: &&Rated| r.movie == i)
            .map_or(0.0, |r| r.stars)
    };
    let details = recommender.details(rec.item, catalogue);
    RecommendedMovie {
        movie: rec.item,
        title: title(rec.item),
        year: year(rec.item),
        score: rec.score,
        tagline: details.and_then(|m| m.tagline.clone()),
        overview: details.map(|m| m.overview.clone()).unwrap_or_default(),
        because: rec
            .because
            .iter()
            .map(|&(source, _)| Because {
                movie: source,
                title: title(source),
                year: year(source),
                stars: stars(source),
            })
            .collect(),
    }
}
