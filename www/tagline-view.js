// The "Tagline" view: the idea form and its settings (bounds and defaults from the engine,
// via protocol.js), the streamed tagline and the similar movies. Two actions: "Best" (beam
// search: its text streams in as it becomes certain, so nothing shown is taken back) and
// "Surprise me" (sampled). Text from the data or the model is only ever inserted as text
// (textContent / append), never as HTML.

import { TASKS, TAGLINE_DEFAULTS, TAGLINE_LIMITS } from './protocol.js';
import { $, el, num } from './dom.js';

const STOP_LABELS = { end_of_text: 'end of text', end_of_line: 'end of line', max_tokens: 'max tokens' };

export class TaglineView {
  // `page` gives `ready()`, `generating()`, `setState(state)` and `clearError()`.
  constructor(client, page) {
    this.client = client;
    this.page = page;
    this.writing = 'Writing tagline…'; // what the stats line says while the text comes
    this.searched = null; // "beam of N" while a beam search's result is shown
    this.els = {
      form: $('query-form'), idea: $('idea'), ideaError: $('idea-error'),
      best: $('best'), generate: $('generate'), stop: $('stop'), beamWidth: $('beam-width'),
      k: $('k'), temperature: $('temperature'), temperatureValue: $('temperature-value'),
      maxTokens: $('max-tokens'), mode: $('mode'), seed: $('seed'), randomSeed: $('random-seed'),
      tagline: $('tagline'), genStats: $('gen-stats'), movies: $('movies'),
      retrievalStats: $('retrieval-stats'),
    };
    this.applyLimits();
    this.wire();
  }

  // The settings' bounds and starting values are the engine's.
  applyLimits() {
    const { k, temperature, maxTokens, mode, seed, beamWidth } = this.els;
    Object.assign(k, { min: 1, max: TAGLINE_LIMITS.max_k, value: TAGLINE_DEFAULTS.k });
    Object.assign(temperature, {
      min: 0, max: TAGLINE_LIMITS.max_temperature, value: TAGLINE_DEFAULTS.temperature,
    });
    Object.assign(maxTokens, {
      min: 1, max: TAGLINE_LIMITS.max_tokens, value: TAGLINE_DEFAULTS.max_tokens,
    });
    Object.assign(beamWidth, {
      min: 1, max: TAGLINE_LIMITS.max_beam_width, value: TAGLINE_DEFAULTS.beam_width,
    });
    mode.value = TAGLINE_DEFAULTS.mode;
    Object.assign(seed, { min: 0, max: 0xffffffff, value: TAGLINE_DEFAULTS.seed });
  }

  // What the form asks for, clamped to the engine's bounds; `decoding` is 'beam' or 'sampled'.
  settings(decoding) {
    const { els } = this;
    const int = (input, lo, hi, fallback) => {
      const v = Number.parseInt(input.value, 10);
      return Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : fallback;
    };
    const temperature = Math.min(TAGLINE_LIMITS.max_temperature,
      Math.max(0, Number.parseFloat(els.temperature.value) || 0));
    let seed = int(els.seed, 0, 0xffffffff, TAGLINE_DEFAULTS.seed);
    // A beam search draws nothing at random: its seed would change nothing.
    if (els.randomSeed.checked && decoding !== 'beam') {
      seed = crypto.getRandomValues(new Uint32Array(1))[0];
      els.seed.value = String(seed); // show it, so a good result can be reproduced
    }
    return {
      k: int(els.k, 1, TAGLINE_LIMITS.max_k, TAGLINE_DEFAULTS.k),
      mode: els.mode.value === 'exact' ? 'exact' : 'hnsw',
      temperature,
      max_tokens: int(els.maxTokens, 1, TAGLINE_LIMITS.max_tokens, TAGLINE_DEFAULTS.max_tokens),
      seed,
      decoding,
      beam_width: int(els.beamWidth, 1, TAGLINE_LIMITS.max_beam_width, TAGLINE_DEFAULTS.beam_width),
    };
  }

  setIdeaError(message) {
    this.els.ideaError.textContent = message;
    if (message) this.els.idea.setAttribute('aria-invalid', 'true');
    else this.els.idea.removeAttribute('aria-invalid');
  }

  submit(event) {
    event.preventDefault();
    if (!this.page.ready() || this.page.generating()) return;
    const { els } = this;
    const idea = els.idea.value.trim();
    if (!idea) {
      this.setIdeaError('Please describe a movie idea first.');
      els.idea.focus();
      return;
    }
    this.setIdeaError('');
    this.page.clearError();
    // The button that submitted says how; Ctrl+Enter (no button) asks for a surprise.
    const decoding = event.submitter?.dataset.decoding === 'beam' ? 'beam' : 'sampled';
    const settings = this.settings(decoding);
    this.searched = decoding === 'beam' ? `beam of ${settings.beam_width}` : null;
    this.writing = this.searched
      ? `Searching for the likeliest tagline (${this.searched})…`
      : 'Writing tagline…';
    els.tagline.textContent = '';
    els.tagline.dataset.decoding = decoding;
    els.tagline.removeAttribute('data-stop');
    els.tagline.setAttribute('aria-busy', 'true'); // announce the finished line, not every token
    els.genStats.textContent = 'Searching similar movies…';
    // The last idea's movies stay, dimmed, until this one's arrive: emptied, the list
    // collapsed and the page below it jumped up and back on every click.
    els.movies.setAttribute('aria-busy', 'true');
    els.retrievalStats.textContent = '';
    this.page.setState('generating');
    this.client.query(TASKS.tagline, { idea, ...settings });
  }

  stop() {
    if (!this.page.generating()) return;
    this.els.stop.disabled = true; // the worker answers with done{stop:'cancelled'}
    this.client.cancel();
  }

  // Buttons follow the page's state.
  update(ready, generating) {
    this.els.generate.disabled = !ready || generating;
    this.els.best.disabled = !ready || generating;
    this.els.stop.disabled = !generating;
  }

  onRetrieved(m) {
    this.els.movies.replaceChildren(...(m.movies || []).map(renderMovie));
    this.els.movies.setAttribute('aria-busy', 'false');
    const mode = m.mode === 'exact' ? 'exact' : 'HNSW';
    this.els.retrievalStats.textContent =
      `query embedded in ${num(m.embed_ms, 1)} ms · searched in ${num(m.search_ms, 1)} ms (${mode})`;
    this.els.genStats.textContent = this.writing;
  }

  onToken(m) {
    this.els.tagline.append(m.text || ''); // a text node: streamed pieces stay plain text
    const rate = num(m.tokens_per_s, 1);
    this.els.genStats.textContent = `${m.tokens} tokens` + (rate ? ` · ${rate} tok/s` : '');
  }

  onDone(m) {
    const { els } = this;
    this.dropStaleMovies(); // stopped before the search was done
    els.tagline.textContent = (m.text || '').trim();
    els.tagline.dataset.stop = m.stop || '';
    els.tagline.setAttribute('aria-busy', 'false');
    const parts = this.searched ? [this.searched] : [];
    if (num(m.ttft_ms, 0)) parts.push(`first token ${num(m.ttft_ms, 0)} ms`);
    if (num(m.prefill_tokens_per_s, 0)) parts.push(`prefill ${num(m.prefill_tokens_per_s, 0)} tok/s`);
    if (num(m.decode_tokens_per_s, 1)) parts.push(`decode ${num(m.decode_tokens_per_s, 1)} tok/s`);
    parts.push(`${m.tokens ?? 0} tokens`);
    parts.push(m.stop === 'cancelled' ? 'stopped by you' : `stopped: ${STOP_LABELS[m.stop] || m.stop}`);
    els.genStats.textContent = parts.join(' · ');
  }

  onError(wasGenerating) {
    this.els.tagline.setAttribute('aria-busy', 'false');
    this.dropStaleMovies();
    if (wasGenerating) this.els.genStats.textContent = '';
  }

  // The last idea's movies, still shown while this one's were searched for, go if the
  // search never answered (stopped first, or an error).
  dropStaleMovies() {
    if (this.els.movies.getAttribute('aria-busy') !== 'true') return;
    this.els.movies.replaceChildren();
    this.els.movies.setAttribute('aria-busy', 'false');
  }

  wire() {
    const { els } = this;
    els.form.addEventListener('submit', (e) => this.submit(e));
    els.stop.addEventListener('click', () => this.stop());
    els.idea.addEventListener('input', () => els.ideaError.textContent && this.setIdeaError(''));
    els.idea.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        els.form.requestSubmit();
      }
    });
    document.addEventListener('keydown', (e) => {
      if (e.key === 'Escape' && this.page.generating()) { e.preventDefault(); this.stop(); }
    });
    for (const chip of document.querySelectorAll('.chip[data-idea]')) {
      chip.addEventListener('click', () => {
        els.idea.value = chip.dataset.idea;
        this.setIdeaError('');
        els.idea.focus();
      });
    }
    const showTemp = () => {
      els.temperatureValue.textContent = Number(els.temperature.value).toFixed(2);
    };
    els.temperature.addEventListener('input', showTemp);
    showTemp();
  }
}

function renderMovie(m) {
  const li = el('li', 'movie');
  li.dataset.index = String(m.index);
  const h3 = el('h3');
  h3.append(el('span', 'movie-title', m.year != null ? `${m.title} (${m.year})` : m.title));
  h3.append(el('span', 'score', `similarity ${num(m.score, 2) ?? '–'}`));
  li.append(h3);
  li.append(m.tagline ? el('p', 'movie-tagline', m.tagline) : el('p', 'movie-tagline muted', 'no tagline'));
  if (m.genres?.length) {
    // Spans, not a nested <ul>, so `#movies li` only ever matches the movies themselves.
    const genres = el('p', 'genres');
    genres.append(el('span', 'visually-hidden', 'Genres: '), ...m.genres.map((g) => el('span', 'genre', g)));
    li.append(genres);
  }
  if (m.overview) {
    const details = el('details');
    details.append(el('summary', null, 'Overview'), el('p', null, m.overview));
    li.append(details);
  }
  return li;
}
