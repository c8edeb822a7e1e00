//! `index-builder recommend`: top-10 movies for a MovieLens user (`--user 196`) or for
//! ratings given on the command line (`--rate "Toy Story=5"`), with what each came from.
//! The default algorithm is the page's (item-KNN over neighbour lists, through the engine's
//! recommend task, as the page runs it), followed by the task's note on why, streamed, when
//! the generator is at hand (`--no-note` skips it). `--algo user` is user-KNN, which needs
//! every user's ratings and so exists only here, as does `--algo popular`; neither has a
//! note (the task writes about the page's list).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use marquee::generate::Generator;
use marquee::recommend::join::{find_movie, parse_rating_arg};
use marquee::recommend::part::RecsPart;
use marquee::recommend::rank::{self, Recommendation};
use marquee::recommend::{Dataset, Ratings};
use marquee::task::recommend::{Rated, Recommend, RecommendRequest, Recommender};
use marquee::task::{self, Phase, Run};

use crate::movielens::{self, Joined};
use crate::paths;
use crate::stream;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Algo {
    /// Item-KNN over each movie's nearest movies (the page's).
    Item,
    /// User-KNN: the most similar users vote.
    User,
    /// The most-rated movies not yet rated.
    Popular,
}

#[derive(Args)]
pub struct RecommendArgs {
    /// A MovieLens user id (1–943): recommend for their ratings.
    #[arg(long, conflicts_with = "rate")]
    user: Option<String>,
    /// TITLE=RATING (1–5), repeatable: "Toy Story=5", "Heat (1995)=4".
    #[arg(long)]
    rate: Vec<String>,
    #[arg(long, value_enum, default_value = "item")]
    algo: Algo,
    /// How many movies to list.
    #[arg(short, default_value_t = 10)]
    n: usize,
    /// Neighbours: movies per neighbour list (item) or users who vote (user).
    #[arg(long, default_value_t = rank::PAGE_NEIGHBOURS)]
    neighbours: usize,
    /// MovieLens directory [default: $MARQUEE_CACHE/assets/movielens]
    #[arg(long)]
    movielens: Option<PathBuf>,
    /// TMDB movies.csv, for taglines [default: $MARQUEE_CACHE/assets/tmdb/movies.csv]
    #[arg(long)]
    catalogue: Option<PathBuf>,
    /// Write the page's part (neighbour lists and counts, no ratings) to this file; with
    /// no --user or --rate, only that.
    #[arg(long)]
    write_part: Option<PathBuf>,
    /// Recommend from a part file, as the page does (item-KNN only).
    #[arg(long, conflicts_with = "algo")]
    part: Option<PathBuf>,
    /// Do not write the note on why, even when the generator is there.
    #[arg(long)]
    no_note: bool,
    /// Generator GGUF for the note [default: $MARQUEE_CACHE/assets/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf]
    #[arg(long)]
    generator: Option<PathBuf>,
    /// The note's sampling seed.
    #[arg(long, default_value_t = RecommendRequest::default().seed)]
    seed: u64,
    /// The note's length limit in tokens.
    #[arg(long, default_value_t = RecommendRequest::default().max_tokens)]
    max_tokens: usize,
}

pub fn run(args: RecommendArgs) -> anyhow::Result<()> {
    let dataset = movielens::load(args.movielens.as_deref())?;
    let ratings = Ratings::new(dataset.users.len(), dataset.movies.len(), &dataset.ratings)?;
    let joined = Joined::load(&dataset, args.catalogue.as_deref())?;
    if let Some(path) = &args.write_part {
        let part = RecsPart::build(&dataset, &joined.join, &joined.tmdb, args.neighbours)?;
        let bytes = part.to_json()?;
        std::fs::write(path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!(
            "{}: {} bytes; {}",
            path.display(),
            bytes.len(),
            joined.summary()
        );
        if args.user.is_none() && args.rate.is_empty() {
            return Ok(());
        }
    }
    let (profile, user) = profile(&args, &dataset, &ratings)?;
    let clock = Instant::now();
    let mut ranked_ms = None;
    let mut note = None;
    let recs = match args.algo {
        Algo::Item => {
            let part = match &args.part {
                Some(path) => {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    RecsPart::from_json(&bytes)?
                }
                None => RecsPart::build(&dataset, &joined.join, &joined.tmdb, args.neighbours)?,
            };
            let recommender = Recommender::new(part, &joined.tmdb);
            let mut generator = note_generator(&args)?;
            // Only the ranking is timed (the note is timed by print_note).
            let ranking = Instant::now();
            let request = RecommendRequest {
                ratings: profile
                    .iter()
                    .map(|&(movie, stars)| Rated { movie, stars })
                    .collect(),
                n: args.n,
                note: generator.is_some(),
                seed: args.seed,
                max_tokens: args.max_tokens,
                ..RecommendRequest::default()
            };
            let started = task::recommend::start(
                &recommender,
                &joined.tmdb,
                generator.as_mut(),
                &request,
                |phase| {
                    if phase == Phase::Searched {
                        ranked_ms = Some(ranking.elapsed().as_secs_f64() * 1e3);
                    }
                },
            )?;
            note = started.run.zip(generator);
            started.recommendations
        }
        Algo::User => rank::user_knn(&ratings, &profile, user, args.neighbours, args.n)?,
        Algo::Popular => {
            let seen: Vec<u32> = profile.iter().map(|p| p.0).collect();
            rank::most_popular(&rank::popularity(&ratings), &seen, args.n)
        }
    };
    let ms = ranked_ms.unwrap_or_else(|| clock.elapsed().as_secs_f64() * 1e3);
    println!("Rated ({}):", profile.len());
    for &(item, r) in profile.iter().take(12) {
        println!("  {r:.0}★  {}", movielens::title(&dataset, item));
    }
    if profile.len() > 12 {
        println!("  … and {} more", profile.len() - 12);
    }
    println!("\nRecommended:");
    for (rank, rec) in recs.iter().enumerate() {
        print_rec(rank, rec, args.algo, &dataset, &joined, &profile);
    }
    eprintln!("\n{}; ranked in {ms:.2} ms", joined.summary());
    if let Some((run, mut generator)) = note {
        print_note(run, &mut generator)?;
    }
    Ok(())
}

/// The generator that writes the note: none with `--no-note` or another algorithm than the
/// page's, and none (said so) when the default file is not there.
fn note_generator(args: &RecommendArgs) -> anyhow::Result<Option<Generator>> {
    if args.no_note || args.algo != Algo::Item {
        return Ok(None);
    }
    let path = paths::generator(args.generator.clone());
    if args.generator.is_none() && !path.is_file() {
        eprintln!(
            "(no note: no generator at {}; scripts/fetch_assets.py --only smollm2 fetches it)",
            path.display()
        );
        return Ok(None);
    }
    let bytes = paths::read_generator(&path)?;
    // The base model: the tagline adapter was trained to write taglines, not paragraphs.
    let mut generator = crate::tagline::load_generator(&bytes, &path)?;
    marquee::task::prime::<Recommend>(&mut generator)?;
    Ok(Some(generator))
}

/// Streams the note to stdout; its timing to stderr.
fn print_note(run: Run, generator: &mut Generator) -> anyhow::Result<()> {
    let started = Instant::now();
    println!("\nWhy you might like these:");
    let streamed = stream::to_stdout(run, generator, started)?;
    eprintln!("note: {}", streamed.summary());
    Ok(())
}

/// (movie, rating) pairs.
type Profile = Vec<(u32, f32)>;

/// The ratings to recommend for, and the MovieLens user they belong to (left out of the
/// user-KNN neighbours).
fn profile(
    args: &RecommendArgs,
    dataset: &Dataset,
    ratings: &Ratings,
) -> anyhow::Result<(Profile, Option<u32>)> {
    if let Some(id) = &args.user {
        let user = dataset.user(id)?;
        return Ok((ratings.by_user.row(user).to_vec(), Some(user)));
    }
    if args.rate.is_empty() {
        bail!("no ratings: pass --user ID or at least one --rate \"TITLE=RATING\"");
    }
    let mut profile: Vec<(u32, f32)> = Vec::new();
    for arg in &args.rate {
        let (title, value) = parse_rating_arg(arg)?;
        let item = find_movie(&dataset.movies, &title)?;
        // Rating the same movie twice keeps the last rating, as the page does.
        profile.retain(|p| p.0 != item);
        profile.push((item, value));
    }
    Ok((profile, None))
}

fn print_rec(
    rank: usize,
    rec: &Recommendation,
    algo: Algo,
    dataset: &Dataset,
    joined: &Joined,
    profile: &[(u32, f32)],
) {
    println!(
        "{:>3}. {}  (score {:.3})",
        rank + 1,
        movielens::title(dataset, rec.item),
        rec.score
    );
    if let Some(tagline) = joined.movie(rec.item).and_then(|m| m.tagline.as_deref()) {
        println!("     “{tagline}”");
    }
    let because: Vec<String> = rec
        .because
        .iter()
        .map(|&(source, share)| match algo {
            Algo::User => format!("user {} ({share:.2})", dataset.users[source as usize]),
            _ => {
                let stars = profile.iter().find(|p| p.0 == source).map_or(0.0, |p| p.1);
                format!("{} {stars:.0}★", movielens::title(dataset, source))
            }
        })
        .collect();
    match (algo, because.is_empty()) {
        (Algo::Popular, _) => {}
        (_, true) => println!("     (no neighbour: one of the most rated)"),
        (Algo::User, false) => println!("     rated by similar users: {}", because.join(", ")),
        (Algo::Item, false) => println!("     because you rated: {}", because.join("; ")),
    }
}
