//! A `tokenizers` tokenizer rebuilt from a GGUF file's metadata, so a generator needs no
//! tokenizer file of its own. candle's `TokenizerFromGguf` is not built for wasm32 and adds a
//! prefix space; this writes the standard tokenizer.json document (byte-level BPE, no prefix
//! space, the model's pre-tokenizer) and loads it, which works the same natively and in wasm.

use std::collections::HashMap;
use std::str::FromStr;

use candle_core::quantized::gguf_file::Value;
use serde_json::json;
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// llama.cpp's token types that become added tokens: 3 = control, 4 = user-defined.
const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

fn get<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<&'a Value> {
    md.get(key)
        .ok_or_else(|| Error::ModelFile(format!("GGUF metadata has no {key:?}")))
}

fn strings(value: &Value, key: &str) -> Result<Vec<String>> {
    value
        .to_vec()?
        .iter()
        .map(|v| v.to_string().cloned())
        .collect::<candle_core::Result<_>>()
        .map_err(|e| Error::ModelFile(format!("{key}: {e}")))
}

/// The pre-tokenizer llama.cpp names in `tokenizer.ggml.pre`.
fn pre_tokenizer(name: &str) -> Result<serde_json::Value> {
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
    match name {
        // SmolLM: every digit its own token, then GPT-2's regex over bytes.
        "smollm" => Ok(json!({"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": true}, byte_level]})),
        "gpt2" | "default" => Ok(byte_level),
        other => Err(Error::ModelFile(format!(
            "GGUF pre-tokenizer {other:?} is not supported (smollm, gpt2)"
        ))),
    }
}

/// Builds the tokenizer of a GGUF model whose `tokenizer.ggml.model` is "gpt2" (byte-level BPE).
pub fn tokenizer_from_gguf(md: &HashMap<String, Value>) -> Result<Tokenizer> {
    let model = get(md, "tokenizer.ggml.model")?.to_string()?;
    if model != "gpt2" {
        return Err(Error::ModelFile(format!(
            "GGUF tokenizer model {model:?} is not supported (only byte-level BPE, \"gpt2\")"
        )));
    }
    let tokens = strings(get(md, "tokenizer.ggml.tokens")?, "tokens")?;
    let merges = strings(get(md, "tokenizer.ggml.merges")?, "merges")?;
    let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()?
            .iter()
            .map(|t| t.to_i32())
            .collect::<candle_core::Result<_>>()?,
        None => vec![1; tokens.len()],
    };
    let pre = match md.get("tokenizer.ggml.pre") {
        Some(v) => v.to_string()?.clone(),
        None => "default".to_string(),
    };
    let added: Vec<serde_json::Value> = tokens
        .iter()
        .zip(&types)
        .enumerate()
        .filter(|(_, (_, &t))| t == CONTROL || t == USER_DEFINED)
        .map(|(id, (content, &t))| {
            json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": t == CONTROL})
        })
        .collect();
    let vocab: serde_json::Map<String, serde_json::Value> = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.clone(), json!(id)))
        .collect();
    byte_level_bpe(vocab, merges, pre_tokenizer(&pre)?, added)
}

/// GPT-2's tokenizer from OpenAI's files (`encoder.json` = vocab.json, `vocab.bpe` =
/// merges.txt), with `<|endoftext|>` as its one special token.
pub fn gpt2_tokenizer(encoder_json: &[u8], vocab_bpe: &[u8]) -> Result<Tokenizer> {
    let vocab: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(encoder_json)
        .map_err(|e| Error::ModelFile(format!("encoder.json: {e}")))?;
    let merges: Vec<String> = std::str::from_utf8(vocab_bpe)
        .map_err(|e| Error::ModelFile(format!("vocab.bpe: {e}")))?
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(str::to_string)
        .collect();
    let end = "<|endoftext|>";
    let id = vocab
        .get(end)
        .and_then(|v| v.as_u64())
        .ok_or_else(|| Error::ModelFile("encoder.json has no <|endoftext|>".into()))?;
    let added = vec![
        json!({"id": id, "content": end, "single_word": false, "lstrip": false,
                            "rstrip": false, "normalized": false, "special": true}),
    ];
    byte_level_bpe(vocab, merges, pre_tokenizer("gpt2")?, added)
}

/// The tokenizer.json document of a byte-level BPE tokenizer, loaded.
fn byte_level_bpe(
    vocab: serde_json::Map<String, serde_json::Value>,
    merges: Vec<String>,
    pre_tokenizer: serde_json::Value,
    added: Vec<serde_json::Value>,
) -> Result<Tokenizer> {
    let document = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                  "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                  "ignore_merges": false, "vocab": vocab, "merges": merges},
    });
    Tokenizer::from_str(&document.to_string()).map_err(Error::tokenizer)
}
