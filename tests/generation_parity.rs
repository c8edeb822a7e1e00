//! SmolLM2 against llama.cpp (tests/fixtures/smollm2_llamacpp.json, made by
//! scripts/reference/make_smollm2_fixture.py): identical token ids from the GGUF-built
//! tokenizer, and greedy choices as close to llama.cpp's as llama.cpp is to itself.
//!
//! The yardstick: the reference is llama.cpp with an f32 KV cache; the fixture also holds
//! the choices of llama.cpp with its default f16 cache, fed the same tokens. A 4-bit 135M
//! model has near-ties in almost every 16-token window, and that cache setting alone flips
//! ~4% of greedy choices, at top-2 gaps up to ~0.35. We must do at least as well: ≥ 5 prompts
//! identical for their first 16 tokens (the criterion), an agreement rate within a
//! point of llama.cpp's own, and no disagreement where llama.cpp is more than twice as sure
//! as at any choice its own variant flips. The margin is there because rounding moves the
//! flips' gaps: our SIMD and portable kernels (`MARQUEE_PORTABLE=1`) round activations in
//! other orders than llama.cpp's, and the largest gap we disagree at was 0.27 on one and 0.47
//! on the other; a real error shows at gaps of several logits (a third of the steps have
//! gaps under 0.69, the median is 1.3).

mod common;

use std::ops::ControlFlow;

use marquee::generate::{Generator, SamplingParams};

const MIN_MATCHING: usize = 16;
/// <|endoftext|> and <|im_end|>.
const END_TOKENS: [u32; 2] = [0, 2];

#[derive(serde::Deserialize)]
struct Fixture {
    tokenization: Vec<Tokenized>,
    greedy: Vec<Greedy>,
}

#[derive(serde::Deserialize)]
struct Tokenized {
    text: String,
    ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Greedy {
    prompt: String,
    prompt_ids: Vec<u32>,
    continuation: Vec<u32>,
    top2_gaps: Vec<f64>,
    f16_kv_choices: Vec<u32>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/smollm2_llamacpp.json")).expect("fixture parses")
}

fn generator() -> Generator {
    Generator::from_llama_gguf(&common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))
        .expect("SmolLM2 loads")
}

#[test]
fn tokenizer_from_gguf_matches_llama_cpp() {
    let g = generator();
    for t in fixture().tokenization {
        assert_eq!(g.encode(&t.text).expect("encodes"), t.ids, "{:?}", t.text);
    }
}

/// Reference steps of a case: up to its end of text (what follows is no continuation).
fn steps(case: &Greedy) -> usize {
    case.continuation
        .iter()
        .take_while(|t| !END_TOKENS.contains(t))
        .count()
}

#[test]
fn greedy_choices_agree_with_llama_cpp_as_llama_cpp_agrees_with_itself() {
    let mut g = generator();
    let f = fixture();
    let (mut total, mut ours_agree, mut theirs_agree, mut clean_prompts) = (0, 0, 0, 0);
    let (mut our_gaps, mut their_gaps) = (Vec::new(), Vec::new());
    for case in &f.greedy {
        assert_eq!(g.encode(&case.prompt).expect("encodes"), case.prompt_ids);
        let n = steps(case);
        let reference = &case.continuation[..n];
        let ours = g.greedy_choices(&case.prompt_ids, reference).expect("runs");
        let ours_off: Vec<usize> = (0..n).filter(|&i| ours[i] != reference[i]).collect();
        let theirs_off: Vec<usize> = (0..n)
            .filter(|&i| case.f16_kv_choices[i] != reference[i])
            .collect();
        total += n;
        ours_agree += n - ours_off.len();
        theirs_agree += n - theirs_off.len();
        our_gaps.extend(ours_off.iter().map(|&i| case.top2_gaps[i]));
        their_gaps.extend(theirs_off.iter().map(|&i| case.top2_gaps[i]));
        if n >= MIN_MATCHING && ours_off.iter().all(|&i| i >= MIN_MATCHING) {
            clean_prompts += 1;
        }
    }
    let max = |gaps: &[f64]| gaps.iter().copied().fold(0.0, f64::max);
    let (ours_rate, theirs_rate) = (
        ours_agree as f64 / total as f64,
        theirs_agree as f64 / total as f64,
    );
    println!(
        "over {total} steps of {} prompts: we agree on {ours_agree} ({:.1}%), llama.cpp with an \
         f16 KV cache on {theirs_agree} ({:.1}%); largest gap at a disagreement: ours {:.3}, \
         theirs {:.3}; {clean_prompts} prompts identical for their first {MIN_MATCHING} tokens",
        f.greedy.len(),
        ours_rate * 100.0,
        theirs_rate * 100.0,
        max(&our_gaps),
        max(&their_gaps)
    );
    assert!(
        clean_prompts >= 5,
        "only {clean_prompts} prompts match for {MIN_MATCHING} tokens"
    );
    assert!(
        ours_rate >= theirs_rate - 0.01,
        "agreement {ours_rate} vs llama.cpp's own {theirs_rate}"
    );
    assert!(
        max(&our_gaps) <= 2.0 * max(&their_gaps),
        "we disagree where llama.cpp is far surer than with itself"
    );
}

#[test]
fn free_running_greedy_reproduces_the_clean_prompts() {
    let mut g = generator();
    let f = fixture();
    let mut checked = 0;
    for case in f.greedy.iter().filter(|c| steps(c) >= MIN_MATCHING) {
        let reference = &case.continuation[..MIN_MATCHING];
        let choices = g.greedy_choices(&case.prompt_ids, reference).expect("runs");
        if choices != reference {
            continue; // covered, with its near-tie, by the test above
        }
        let params = SamplingParams::greedy(MIN_MATCHING);
        let out = g
            .generate(&case.prompt_ids, &params, |_| ControlFlow::Continue(()))
            .expect("generates");
        assert_eq!(out.tokens, reference, "{:?}", case.prompt);
        checked += 1;
    }
    assert!(checked >= 5, "{checked}");
}

#[test]
fn bad_generator_input_is_refused() {
    let mut g = generator();
    let never = |_: &str| ControlFlow::Continue(());
    assert!(g.generate(&[], &SamplingParams::default(), never).is_err());
    let too_long = vec![100u32; g.context_length()];
    let err = g
        .generate(&too_long, &SamplingParams::default(), never)
        .expect_err("too long");
    assert!(err.to_string().contains("context"), "{err}");
    // A GGUF of another architecture (the BERT embedder) is named in the error.
    let bert = {
        let config = marquee::embed::BertConfig::from_json(&common::asset("minilm/config.json"))
            .expect("config");
        let weights =
            marquee::weights::Weights::from_safetensors(&common::asset("minilm/model.safetensors"))
                .expect("weights");
        marquee::embed::quantize_bert(&weights, &config, candle_core::quantized::GgmlDType::Q8_0)
            .expect("gguf")
    };
    let err = Generator::from_llama_gguf(&bert).err().expect("refused");
    assert!(err.to_string().contains("bert"), "{err}");
}

#[test]
fn sampling_is_reproducible_and_cancellable() {
    let mut g = generator();
    let prompt = g
        .encode("<|im_start|>user\nName a movie about space.<|im_end|>\n<|im_start|>assistant\n")
        .expect("encodes");
    let params = SamplingParams {
        max_tokens: 12,
        ..SamplingParams::default()
    };
    let run = |g: &mut Generator, p: &SamplingParams| {
        g.generate(&prompt, p, |_| ControlFlow::Continue(()))
            .expect("runs")
    };
    let a = run(&mut g, &params);
    let b = run(&mut g, &params);
    assert_eq!(a.tokens, b.tokens, "same seed, same tokens");
    let other = run(
        &mut g,
        &SamplingParams {
            seed: 7,
            temperature: 1.5,
            ..params.clone()
        },
    );
    assert_ne!(
        a.tokens, other.tokens,
        "another seed and temperature change the sample"
    );
    let mut pieces = 0;
    let cancelled = g
        .generate(&prompt, &params, |_| {
            pieces += 1;
            if pieces == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("runs");
    assert_eq!(cancelled.stop, marquee::generate::StopReason::Cancelled);
    assert!(cancelled.tokens.len() < a.tokens.len().max(3));
}

/// A position's logits have the same bits however the prompt before it was split into
/// calls: whole, a prefix and then the rest (at every split point), or one token at a time.
/// This is what lets a primed prefix change nothing but the time (see the next test), on any
/// CPU: attention sums in one fixed order (`src/generate/attention.rs`) and every other step
/// is row by row.
#[test]
fn logits_do_not_depend_on_how_the_prompt_is_split() {
    use marquee::generate::Llama;
    use marquee::weights::GgufTensors;

    let bytes = common::asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let mut tensors = GgufTensors::read(&bytes).expect("reads");
    let mut model = Llama::new(&mut tensors).expect("loads");
    let prompt = generator()
        .encode(
            "<|im_start|>user\nA lighthouse keeper finds a map.<|im_end|>\n<|im_start|>assistant\n",
        )
        .expect("encodes");
    let ids = |ids: &[u32]| {
        candle_core::Tensor::new(ids, &candle_core::Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("ids")
    };
    let bits = |logits: candle_core::Tensor| -> Vec<u32> {
        let values = logits.flatten_all().and_then(|t| t.to_vec1::<f32>());
        values
            .expect("logits")
            .iter()
            .map(|v| v.to_bits())
            .collect()
    };
    let n = prompt.len();
    assert!(n >= 16, "{n} tokens");
    let whole = bits(model.forward(&ids(&prompt), 0).expect("whole"));
    for split in 1..n {
        model.forward(&ids(&prompt[..split]), 0).expect("prefix");
        let rest = model.forward(&ids(&prompt[split..]), split).expect("rest");
        assert!(
            bits(rest) == whole,
            "split at {split} of {n} changes the logits"
        );
    }
    model.forward(&ids(&prompt[..1]), 0).expect("first token");
    let mut last = None;
    for (position, &token) in prompt.iter().enumerate().skip(1) {
        last = Some(model.forward(&ids(&[token]), position).expect("one token"));
    }
    assert!(
        bits(last.expect("steps")) == whole,
        "token by token changes the logits"
    );
}

/// After `prime`, prompts that start with the primed system turn prefill only the rest, and
/// a prompt that shares its start with the tokens already cached prefills only what
/// differs; either way they write what a fresh generator writes, so the same prompt and
/// seed give the same tagline however often they run and whatever ran in between.
#[test]
fn cached_prefixes_skip_their_prefill_and_change_nothing_else() {
    use marquee::task::tagline::{prompt_prefix, Tagline};

    let chat = |idea: &str| {
        format!(
            "{}Overview: {idea}<|im_end|>\n<|im_start|>assistant\n",
            prompt_prefix()
        )
    };
    let run = |g: &mut Generator, prompt: &[u32], params: &SamplingParams| {
        g.generate(prompt, params, |_| ControlFlow::Continue(()))
            .expect("runs")
    };
    let greedy = SamplingParams::greedy(12);
    let sampled = SamplingParams {
        max_tokens: 12,
        ..SamplingParams::default()
    };
    let mut fresh = generator();
    let prompt = fresh
        .encode(&chat("A robot butler learns to cook."))
        .expect("encodes");
    let other = fresh
        .encode(&chat("Two rival magicians."))
        .expect("encodes");
    let plain = fresh
        .encode("<|im_start|>user\nHi<|im_end|>\n")
        .expect("encodes");
    let prefix = fresh.encode(&prompt_prefix()).expect("encodes");
    assert!(prompt.starts_with(&prefix) && other.starts_with(&prefix));
    let want = run(&mut fresh, &prompt, &greedy);
    assert_eq!(want.cached_prompt_tokens, 0);
    let mut fresh = generator();
    let want_sampled = run(&mut fresh, &prompt, &sampled);
    let mut fresh = generator();
    let want_plain = run(&mut fresh, &plain, &sampled);

    let mut g = generator();
    marquee::task::prime::<Tagline>(&mut g).expect("primes");
    marquee::task::prime::<Tagline>(&mut g).expect("primes again");
    assert_eq!(g.primed_prefixes(), 1, "one copy per prefix");
    let primed = run(&mut g, &prompt, &greedy);
    assert_eq!(primed.cached_prompt_tokens, prefix.len());
    assert_eq!(primed.tokens, want.tokens);

    // The same prompt again reuses all but its last token.
    let first = run(&mut g, &prompt, &sampled);
    assert_eq!(first.cached_prompt_tokens, prompt.len() - 1);
    assert_eq!(first.tokens, want_sampled.tokens);
    assert!(run(&mut g, &other, &sampled).cached_prompt_tokens >= prefix.len());
    let again = run(&mut g, &prompt, &sampled);
    assert!(again.cached_prompt_tokens >= prefix.len());
    assert_eq!(
        again.tokens, first.tokens,
        "same prompt and seed, same tagline"
    );
    // A prompt without the prefix runs (nearly) whole, and the prefix comes back after it.
    let alone = run(&mut g, &plain, &sampled);
    assert!(alone.cached_prompt_tokens < prefix.len());
    assert_eq!(alone.tokens, want_plain.tokens);
    let back = run(&mut g, &prompt, &sampled);
    assert_eq!(back.cached_prompt_tokens, prefix.len());
    assert_eq!(back.tokens, first.tokens);
}

/// A decoding can only be stepped by the generator that started it, and only until that
/// generator starts another.
#[test]
fn a_decoding_belongs_to_its_generator_and_run() {
    let mut a = generator();
    let mut b = generator();
    let prompt = a
        .encode("<|im_start|>user\nHi<|im_end|>\n")
        .expect("encodes");
    let params = SamplingParams::greedy(4);
    let mut first = a.start(&prompt, &params).expect("starts");
    assert!(first.step(&mut b).is_err(), "another generator");
    let mut second = a.start(&prompt, &params).expect("starts");
    assert!(first.step(&mut a).is_err(), "superseded by a later start");
    assert!(second.step(&mut a).is_ok());
}
