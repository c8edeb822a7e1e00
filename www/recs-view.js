// The "Recommend" view: search-as-you-type over MovieLens titles to rate movies 1–5 (or an
// example profile to start from), the top 10 re-ranked on every change, each with the rated
// movies it came from, and on demand a streamed note on why (Stop ends it). Ratings stay in
// this browser (localStorage) until cleared. The recs part is fetched on the tab's first
// opening. Text from the data or the model is only ever inserted as text, never as HTML.

import { RECOMMEND_LIMITS } from './protocol.js';
import { $, el, num } from './dom.js';
import { loadRatings, saveRatings, search, searchIndex } from './recs-store.js';

const STOP_LABELS = { end_of_text: 'end of text', end_of_line: 'end of paragraph', max_tokens: 'max tokens' };
// The engine's rating scale (1–5).
const MAX_STARS = RECOMMEND_LIMITS.max_stars;
const stars = (n) => '★'.repeat(n) + '☆'.repeat(MAX_STARS - n);

export class RecsView {
  // `page` gives `ready()`, `generating()`, `setState(state)` and `clearError()`.
  constructor(client, page) {
    this.client = client;
    this.page = page;
    this.status = 'idle'; // idle | loading | ready | error | absent
    this.movies = [];
    this.index = [];
    this.ratings = []; // [{movie, stars}], in the order rated
    this.sent = new Map(); // re-ranking id -> performance.now() when sent (notes are not timed)
    this.noting = false;
    this.els = {
      panel: $('recs-panel'), status: $('recs-status'), error: $('recs-error'), body: $('recs-body'),
      search: $('recs-search'), results: $('recs-results'), profiles: $('recs-profiles'),
      rated: $('rated'), ratedCount: $('rated-count'), clear: $('recs-clear'),
      list: $('recs-list'), stats: $('recs-stats'), why: $('recs-why'), stop: $('recs-stop'),
      note: $('recs-note'), noteStats: $('recs-note-stats'), source: $('recs-source'),
    };
    this.wire();
  }

  setStatus(status, text) {
    this.status = status;
    this.els.panel.dataset.recs = status;
    this.els.status.textContent = text;
    this.els.body.hidden = status !== 'ready';
    this.update(this.page.ready(), this.page.generating());
  }

  // The tab was opened, or the bundle (re)loaded while it is open: fetch the part once.
  open() {
    if (!this.page.ready() || !['idle', 'error'].includes(this.status)) return;
    this.els.error.replaceChildren();
    this.setStatus('loading', 'Loading the recommendations data…');
    this.client.loadRecs();
  }

  // A new bundle is loaded: its session has no recommender yet.
  onBundleReady(hasRecs) {
    this.stopNote('');
    if (hasRecs) this.setStatus('idle', '');
    else this.setStatus('absent', 'This build of the page has no recommendations data.');
  }

  onProgress(m) {
    if (this.status === 'loading' && m.total) {
      this.els.status.textContent = `Loading the recommendations data… ${Math.floor((m.loaded / m.total) * 100)}%`;
    }
  }

  onReady(m) {
    this.movies = m.movies || [];
    this.index = searchIndex(this.movies);
    this.els.source.textContent = m.source || '';
    this.els.profiles.replaceChildren(...(m.profiles || []).map((p) => {
      const chip = el('button', 'chip', p.name);
      chip.type = 'button';
      chip.addEventListener('click', () => this.setRatings(p.ratings));
      return chip;
    }));
    const from = m.cached_bytes > 0 ? 'from cache' : `${num(m.downloaded_bytes / 1e6, 2)} MB downloaded`;
    this.setStatus('ready', `${this.movies.length.toLocaleString('en-US')} MovieLens movies · loaded in ${num(m.load_ms, 0)} ms (${from})`);
    this.setRatings(loadRatings(this.movies));
  }

  // An error about this view's requests; a failed load offers a retry.
  onError(m, loading) {
    const p = el('p', null, m.message || 'Something went wrong.');
    this.els.error.replaceChildren(p);
    if (loading) {
      const retry = el('button', null, 'Retry');
      retry.type = 'button';
      retry.addEventListener('click', () => this.open());
      this.els.error.append(retry);
      this.setStatus('error', '');
    } else if (this.noting) {
      this.stopNote('');
    }
  }

  setRatings(ratings) {
    this.ratings = ratings.map(({ movie, stars: s }) => ({ movie, stars: s }));
    this.changed();
  }

  rate(movie, value) {
    this.ratings = this.ratings.filter((r) => r.movie !== movie);
    if (value > 0) this.ratings.push({ movie, stars: value });
    this.changed();
  }

  // After every change: save, redraw the ratings, re-rank (a note being written is about
  // the old list, so it stops).
  changed() {
    saveRatings(this.ratings, this.movies);
    this.renderRated();
    if (this.noting) this.stopNote('Stopped: your ratings changed.');
    else this.els.noteStats.textContent = '';
    this.els.note.textContent = '';
    if (this.ratings.length === 0) {
      this.els.list.replaceChildren();
      this.els.stats.textContent = 'Rate a movie to get recommendations.';
      delete this.els.stats.dataset.ms;
    } else {
      const id = this.client.recommend({ ratings: this.ratings, note: false });
      this.sent.set(id, performance.now());
    }
    this.update(this.page.ready(), this.page.generating());
  }

  writeNote() {
    if (!this.page.ready() || this.page.generating() || this.ratings.length === 0) return;
    this.page.clearError();
    this.els.error.replaceChildren();
    const seed = crypto.getRandomValues(new Uint32Array(1))[0];
    this.client.recommend({ ratings: this.ratings, note: true, seed });
    this.noting = true;
    this.els.note.textContent = '';
    this.els.note.removeAttribute('data-stop');
    this.els.note.setAttribute('aria-busy', 'true');
    this.els.noteStats.textContent = 'Reading the recommended movies…';
    this.page.setState('generating');
  }

  // Ends the note on the page's side (the worker is told by `cancel`).
  stopNote(why) {
    if (!this.noting) return;
    this.client.cancel();
    this.noting = false;
    this.els.note.dataset.stop = 'cancelled';
    this.els.note.setAttribute('aria-busy', 'false');
    this.els.noteStats.textContent = why;
    this.page.setState('ready');
  }

  onRecommended(m) {
    const sent = this.sent.get(m.id);
    // Older ones were overtaken (their lists are stale and never arrive).
    for (const id of this.sent.keys()) if (id <= m.id) this.sent.delete(id);
    this.els.list.replaceChildren(...(m.movies || []).map(renderRec));
    // From the change to the new list in the DOM: what a visitor waits for.
    const ms = sent === undefined ? null : performance.now() - sent;
    const round = ms === null ? '' : ` in ${num(ms, 1)} ms`;
    this.els.stats.textContent = `${m.movies.length} recommendations${round} (ranking ${num(m.rank_ms, 2)} ms in the engine)`;
    if (ms !== null) this.els.stats.dataset.ms = String(ms);
    if (m.note) this.els.noteStats.textContent = `Writing about the first ${m.movies_in_prompt} (${m.prompt_tokens} prompt tokens)…`;
  }

  onToken(m) {
    if (!this.noting) return;
    this.els.note.append(m.text || ''); // a text node: streamed pieces stay plain text
  }

  onDone(m) {
    this.noting = false;
    this.els.note.textContent = (m.text || '').trim();
    this.els.note.dataset.stop = m.stop || '';
    this.els.note.setAttribute('aria-busy', 'false');
    const parts = [];
    if (num(m.ttft_ms, 0)) parts.push(`first token ${num(m.ttft_ms, 0)} ms`);
    if (num(m.decode_tokens_per_s, 1)) parts.push(`${num(m.decode_tokens_per_s, 1)} tok/s`);
    parts.push(`${m.tokens ?? 0} tokens`);
    parts.push(m.stop === 'cancelled' ? 'stopped by you' : `stopped: ${STOP_LABELS[m.stop] || m.stop}`);
    this.els.noteStats.textContent = parts.join(' · ');
  }

  // Buttons follow the page's state.
  update(ready, generating) {
    const usable = ready && this.status === 'ready';
    this.els.why.disabled = !usable || generating || this.ratings.length === 0;
    this.els.stop.disabled = !this.noting;
    this.els.clear.disabled = this.ratings.length === 0;
  }

  showResults() {
    const found = search(this.index, this.els.search.value);
    this.els.results.replaceChildren(...found.map((movie) => {
      const li = el('li', 'recs-result');
      li.dataset.movie = String(movie);
      const current = this.ratings.find((r) => r.movie === movie)?.stars ?? 0;
      li.append(el('span', 'movie-title', label(this.movies[movie])),
        this.starButtons(movie, current, () => { this.els.search.value = ''; this.showResults(); }));
      return li;
    }));
  }

  renderRated() {
    const { rated, ratedCount } = this.els;
    ratedCount.textContent = this.ratings.length ? `(${this.ratings.length})` : '';
    rated.replaceChildren(...this.ratings.map(({ movie, stars: s }) => {
      const li = el('li', 'rated-movie');
      li.dataset.movie = String(movie);
      const remove = el('button', 'remove', '×');
      remove.type = 'button';
      remove.setAttribute('aria-label', `Remove your rating of ${label(this.movies[movie])}`);
      remove.addEventListener('click', () => this.rate(movie, 0));
      li.append(el('span', 'movie-title', label(this.movies[movie])), this.starButtons(movie, s), remove);
      return li;
    }));
  }

  // Five buttons that rate `movie`; `current` is pressed.
  starButtons(movie, current, after) {
    const group = el('span', 'stars');
    group.setAttribute('role', 'group');
    group.setAttribute('aria-label', `Your rating of ${label(this.movies[movie])}`);
    for (let n = RECOMMEND_LIMITS.min_stars; n <= MAX_STARS; n++) {
      const b = el('button', 'star', n <= current ? '★' : '☆');
      b.type = 'button';
      b.dataset.stars = String(n);
      b.setAttribute('aria-label', `${n} of ${MAX_STARS}`);
      b.setAttribute('aria-pressed', String(n === current));
      b.addEventListener('click', () => { this.rate(movie, n); after?.(); });
      group.append(b);
    }
    return group;
  }

  wire() {
    const { els } = this;
    els.search.addEventListener('input', () => this.showResults());
    els.clear.addEventListener('click', () => this.setRatings([]));
    els.why.addEventListener('click', () => this.writeNote());
    els.stop.addEventListener('click', () => this.stopNote('stopped by you'));
  }
}

const label = (m) => (m ? (m.year != null ? `${m.title} (${m.year})` : m.title) : '');

function renderRec(m) {
  const li = el('li', 'movie');
  li.dataset.movie = String(m.movie);
  const h3 = el('h3');
  h3.append(el('span', 'movie-title', label(m)), el('span', 'score', `score ${num(m.score, 2) ?? '–'}`));
  li.append(h3);
  if (m.tagline) li.append(el('p', 'movie-tagline', m.tagline));
  const because = el('p', 'because');
  if (m.because?.length) {
    because.append('Because you rated ');
    m.because.forEach((b, i) => {
      if (i > 0) because.append(i === m.because.length - 1 ? ' and ' : ', ');
      because.append(el('span', 'because-title', label(b)), ` ${stars(Math.round(b.stars))}`);
    });
  } else {
    because.textContent = 'One of the most rated movies (none of yours led here).';
  }
  li.append(because);
  if (m.overview) {
    const details = el('details');
    details.append(el('summary', null, 'Overview'), el('p', null, m.overview));
    li.append(details);
  }
  return li;
}
