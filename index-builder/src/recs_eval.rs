//! `index-builder recommend-eval`: the recommenders on a seeded 80/20 split of MovieLens
//! 100K. Rating prediction (KNNBasic user- and item-based, cosine and msd; the global mean
//! as the floor) by RMSE and MAE over the test ratings; top-N lists (most popular, item-KNN
//! as the page runs it, user-KNN) by HR@N, NDCG@N and P@N over every movie a test user has
//! not rated in training. `--export DIR` writes the split for
//! scripts/reference/recs_reference.py, which runs scikit-surprise and `implicit` on it.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use marquee::recommend::knn::{Based, KnnBasic, KnnOptions, Similarity};
use marquee::recommend::metrics::{rating_errors, RankingMetrics};
use marquee::recommend::rank::{self, ItemNeighbours, Recommendation, Weighting};
use marquee::recommend::{split, Dataset, Rating, Ratings};
use serde_json::json;

use crate::movielens;

#[derive(Args)]
pub struct RecsEvalArgs {
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long, default_value_t = 0.2)]
    test_fraction: f64,
    /// KNNBasic's k (neighbours per prediction).
    #[arg(long, default_value_t = 40)]
    k: usize,
    /// Length of the ranked lists.
    #[arg(short, default_value_t = 10)]
    n: usize,
    /// Item-KNN neighbour-list sizes to compare (the page's is marked).
    #[arg(long, value_delimiter = ',', default_values_t = [10, 19, 49])]
    item_k: Vec<usize>,
    /// User-KNN: users who vote.
    #[arg(long, default_value_t = 50)]
    user_k: usize,
    /// Write train.tsv / test.tsv (MovieLens ids, shuffled order) here.
    #[arg(long)]
    export: Option<PathBuf>,
    /// Write the figures as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long)]
    movielens: Option<PathBuf>,
}

pub fn run(args: RecsEvalArgs) -> anyhow::Result<()> {
    let dataset = movielens::load(args.movielens.as_deref())?;
    let (train, test) = split::train_test(&dataset.ratings, args.test_fraction, args.seed);
    let (users, items) = (dataset.users.len(), dataset.movies.len());
    let matrix = Ratings::new(users, items, &train)?;
    eprintln!(
        "split (seed {}): {} train, {} test ratings",
        args.seed,
        train.len(),
        test.len()
    );
    if let Some(dir) = &args.export {
        export(dir, &dataset, &train, &test)?;
    }
    let mut report = Vec::new();
    let mut out = String::new();
    writeln!(
        out,
        "| rating prediction | RMSE | MAE | impossible | seconds |"
    )?;
    writeln!(out, "|---|---|---|---|---|")?;
    let (rmse, mae) = rating_errors(
        test.iter()
            .map(|t| (matrix.global_mean, f64::from(t.value))),
    )
    .context("no test ratings")?;
    writeln!(out, "| global mean | {rmse:.4} | {mae:.4} | | |")?;
    for (based, similarity) in [
        (Based::User, Similarity::Cosine),
        (Based::User, Similarity::Msd),
        (Based::Item, Similarity::Cosine),
        (Based::Item, Similarity::Msd),
    ] {
        let clock = Instant::now();
        let options = KnnOptions {
            k: args.k,
            based,
            similarity,
            ..KnnOptions::default()
        };
        let knn = KnnBasic::fit(&matrix, options);
        let predictions: Vec<_> = test.iter().map(|t| knn.predict(t.user, t.item)).collect();
        let secs = clock.elapsed().as_secs_f64();
        let (rmse, mae) = rating_errors(
            predictions
                .iter()
                .zip(&test)
                .map(|(p, t)| (p.value, f64::from(t.value))),
        )
        .context("no test ratings")?;
        let impossible = predictions.iter().filter(|p| p.impossible).count();
        let name = format!("KNNBasic {based:?}-based {similarity:?}, k = {}", args.k);
        writeln!(
            out,
            "| {name} | {rmse:.4} | {mae:.4} | {impossible} | {secs:.1} |"
        )?;
        report.push(json!({"kind": "rating", "name": name, "rmse": rmse, "mae": mae, "impossible": impossible}));
    }

    let n = args.n;
    writeln!(
        out,
        "\n| top-{n} over unseen movies | HR@{n} | NDCG@{n} | P@{n} | users | ms/user |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    let truth = held_out(&test, users);
    let popularity = rank::popularity(&matrix);
    let mut rankers: Vec<(String, Ranker)> = vec![(
        "most popular".into(),
        Box::new(|_, profile: &[(u32, f32)]| {
            let seen: Vec<u32> = profile.iter().map(|p| p.0).collect();
            Ok(rank::most_popular(&popularity, &seen, n))
        }),
    )];
    for &k in &args.item_k {
        let neighbours = ItemNeighbours::build(&matrix, k);
        for weighting in [Weighting::Binary, Weighting::Liked] {
            let page = k == rank::PAGE_NEIGHBOURS && weighting == rank::PAGE_WEIGHTING;
            let name = format!(
                "item-KNN cosine, {k} neighbours, {weighting:?}{}",
                if page { " (the page's)" } else { "" }
            );
            let neighbours = neighbours.clone();
            rankers.push((
                name,
                Box::new(move |_, profile| Ok(neighbours.recommend(profile, weighting, n)?)),
            ));
        }
    }
    let user_k = args.user_k;
    let m = &matrix;
    rankers.push((
        format!("user-KNN cosine, {user_k} users"),
        Box::new(move |user, profile| Ok(rank::user_knn(m, profile, Some(user), user_k, n)?)),
    ));
    for (name, ranker) in &rankers {
        let clock = Instant::now();
        let mut metrics = RankingMetrics::default();
        for (user, relevant) in truth.iter().enumerate() {
            let profile = matrix.by_user.row(user as u32);
            if relevant.is_empty() || profile.is_empty() {
                continue;
            }
            let list: Vec<u32> = ranker(user as u32, profile)?
                .iter()
                .map(|r| r.item)
                .collect();
            metrics.add(&list, n, relevant.len(), |i| relevant.contains(&i));
        }
        let ms = clock.elapsed().as_secs_f64() * 1e3 / metrics.users.max(1) as f64;
        let m = metrics.mean();
        writeln!(
            out,
            "| {name} | {:.4} | {:.4} | {:.4} | {} | {ms:.2} |",
            m.hit_rate, m.ndcg, m.precision, m.users
        )?;
        report.push(json!({"kind": "ranking", "name": name, "hr": m.hit_rate, "ndcg": m.ndcg, "precision": m.precision, "users": m.users}));
    }
    println!("{out}");
    if let Some(path) = &args.json {
        let doc = json!({"seed": args.seed, "test_fraction": args.test_fraction, "train": train.len(), "test": test.len(), "n": n, "results": report});
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// A top-N list maker: (user, their training ratings) → list.
type Ranker<'a> = Box<dyn Fn(u32, &[(u32, f32)]) -> anyhow::Result<Vec<Recommendation>> + 'a>;

/// Each user's held-out movies.
fn held_out(test: &[Rating], users: usize) -> Vec<Vec<u32>> {
    let mut truth = vec![Vec::new(); users];
    for t in test {
        truth[t.user as usize].push(t.item);
    }
    truth
}

/// train.tsv and test.tsv: `user_id item_id rating` with MovieLens's ids, in split order.
fn export(
    dir: &std::path::Path,
    dataset: &Dataset,
    train: &[Rating],
    test: &[Rating],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, ratings) in [("train.tsv", train), ("test.tsv", test)] {
        let mut text = String::from("user_id\titem_id\trating\n");
        for r in ratings {
            writeln!(
                text,
                "{}\t{}\t{}",
                dataset.users[r.user as usize], dataset.movies[r.item as usize].id, r.value
            )?;
        }
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    eprintln!("split written to {}", dir.display());
    Ok(())
}
