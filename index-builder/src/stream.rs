//! Shared by the commands that write with the generator (`tagline`, `ask`, `recommend`'s
//! note): the text goes to stdout piece by piece as the task shows it, the timing to stderr.

use std::io::Write;
use std::ops::ControlFlow;
use std::time::Instant;

use marquee::generate::{Generation, Generator};
use marquee::task::{Run, RunEvent};

/// A finished generation and its clock readings (seconds from the job's start).
pub struct Streamed {
    pub generation: Generation,
    pub to_first_s: f64,
    pub total_s: f64,
}

/// Runs `run` to its end, printing each piece of text as it comes; `started` is when the
/// job began (retrieval included), so the time to the first text is what a user waits.
pub fn to_stdout(
    run: Run,
    generator: &mut Generator,
    started: Instant,
) -> anyhow::Result<Streamed> {
    let mut first_piece = None;
    let generation = run.to_end(generator, |event| {
        if let RunEvent::Text(piece) = event {
            first_piece.get_or_insert_with(Instant::now);
            print!("{piece}");
            std::io::stdout().flush().ok();
        }
        ControlFlow::Continue(())
    })?;
    println!();
    let total_s = started.elapsed().as_secs_f64();
    Ok(Streamed {
        to_first_s: first_piece.map_or(total_s, |t| (t - started).as_secs_f64()),
        total_s,
        generation,
    })
}

impl Streamed {
    /// "N prompt tokens (C cached), first text after X s, T tokens at R tokens/s, S s in all,
    /// stop: …": the same figures for every command.
    pub fn summary(&self) -> String {
        let g = &self.generation;
        let decode_s = (self.total_s - self.to_first_s).max(1e-9);
        format!(
            "{} prompt tokens ({} cached), first text after {:.2} s, {} tokens at {:.1} tokens/s, \
             {:.2} s in all, stop: {:?}",
            g.prompt_tokens,
            g.cached_prompt_tokens,
            self.to_first_s,
            g.tokens.len(),
            g.tokens.len().saturating_sub(1) as f64 / decode_s,
            self.total_s,
            g.stop
        )
    }
}
