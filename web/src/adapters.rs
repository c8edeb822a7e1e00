//! The generator's LoRA adapters: each job runs with its own (taglines with the tagline
//! adapter, Ask with the reader adapter, the Recommend note with none), switched only when
//! the job changes, since switching primes the task prefixes again (a fraction of a
//! second).

use marquee::generate::{Adapter, AdapterMode};
use wasm_bindgen::prelude::*;

use super::{js_error, Session};

/// Which adapter a job wants on the generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdapterUse {
    /// The base model.
    None,
    Tagline,
    Ask,
}

/// The adapters the bundle ships (the reader adapter once the Ask tab has loaded it) and
/// the one applied now.
pub(crate) struct Adapters {
    pub tagline: Option<Adapter>,
    pub ask: Option<Adapter>,
    pub applied: AdapterUse,
}

impl Adapters {
    pub fn new() -> Self {
        Self {
            tagline: None,
            ask: None,
            applied: AdapterUse::None,
        }
    }

    fn get(&self, which: AdapterUse) -> Option<&Adapter> {
        match which {
            AdapterUse::None => None,
            AdapterUse::Tagline => self.tagline.as_ref(),
            AdapterUse::Ask => self.ask.as_ref(),
        }
    }
}

impl Session {
    /// Applies the adapter `which` job wants (the base model when the bundle has none).
    pub(crate) fn use_adapter(&mut self, which: AdapterUse) -> Result<(), JsError> {
        let which = if self.adapters.get(which).is_some() {
            which
        } else {
            AdapterUse::None
        };
        let Some(generator) = self.generator.as_mut() else {
            return Ok(());
        };
        if self.adapters.applied != which {
            generator
                .set_adapter(self.adapters.get(which), AdapterMode::Apart)
                .map_err(js_error)?;
            self.adapters.applied = which;
        }
        Ok(())
    }
}
