//! `index-builder recommend`: top-10 movies for a MovieLens user (`--user 196`) or for
//! ratings given on the command line (`--rate "Toy Story=5"`), with what each came from.
//! The default algorithm is the page's (item-KNN over neighbour lists); `--algo user` is
//! user-KNN, which needs every user's ratings and so exists only here.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use marquee::recommend::join::{find_movie, parse_rating_arg};
use marquee::recommend::part::RecsPart;
use marquee::recommend::rank::{self, ItemNeighbours, Recommendation};
use marquee::recommend::{Dataset, Ratings};

use crate::movielens::{self, Joined};

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
    let recs = match (&args.part, args.algo) {
        (Some(path), _) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            RecsPart::from_json(&bytes)?.recommend(&profile, args.n)?
        }
        (None, Algo::Item) => ItemNeighbours::build(&ratings, args.neighbours).recommend(
            &profile,
            rank::PAGE_WEIGHTING,
            args.n,
        )?,
        (None, Algo::User) => rank::user_knn(&ratings, &profile, user, args.neighbours, args.n)?,
        (None, Algo::Popular) => {
            let seen: Vec<u32> = profile.iter().map(|p| p.0).collect();
            rank::most_popular(&rank::popularity(&ratings), &seen, args.n)
        }
    };
    let ms = clock.elapsed().as_secs_f64() * 1e3;
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
    eprintln!(
        "\n{}; neighbours built and ranked in {ms:.1} ms",
        joined.summary()
    );
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
