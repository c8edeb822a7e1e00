// The "Ask" view: a question about a movie, answered from passages of the catalogue (its
// credits, facts and overview, cut into chunks): the passages found (the ones the model
// read marked), then the answer streamed, with the answer marked where a passage holds it;
// "I don't know." when no passage is close enough to the question. The passages are
// fetched on the tab's first opening. Text from the data or the model is only ever
// inserted as text (textContent / text nodes), never as HTML.

import { ASK_DEFAULTS, ASK_LIMITS } from './protocol.js';
import { $, el, mb, num, pct } from './dom.js';

const STOP_LABELS = { end_of_text: 'end of text', end_of_line: 'end of line', max_tokens: 'max tokens' };
// Facts the default TMDB catalogue holds, each in the top passage found for it and answered
// right by the reader (checked with `index-builder ask`). Not "Who played the Joker in The
// Dark Knight?": the reader names the cast's first actor (docs/evaluation.md).
const EXAMPLES = [
  'Who directed Jurassic Park?',
  'Who directed Avatar?',
  'Which 2010 film did Christopher Nolan direct?',
  'Who composed the music for Jaws?',
];
const bytes = (text) => new TextEncoder().encode(text).length;

export class AskView {
  // `page` gives `ready()`, `generating()`, `setState(state)` and `clearError()`.
  constructor(client, page) {
    this.client = client;
    this.page = page;
    this.status = 'idle'; // idle | loading | ready | error | absent
    this.answering = false;
    this.loaded = new Map(); // part -> [loaded, total] while the parts download
    this.passages = []; // the passages shown for the last question
    this.els = {
      section: $('ask-section'), status: $('ask-status'), progress: $('ask-progress'),
      error: $('ask-error'), form: $('ask-form'), question: $('question'),
      hint: $('question-hint'), questionError: $('question-error'), examples: $('ask-examples'),
      submit: $('ask-submit'), stop: $('ask-stop'), answer: $('answer'), note: $('answer-note'),
      stats: $('answer-stats'), list: $('passages'), listStats: $('passages-stats'),
    };
    this.els.hint.textContent = `Ask about a movie's director, writers, composer, cast, ` +
      `characters, year, runtime or genres (up to ${ASK_LIMITS.max_question_bytes} bytes).`;
    this.wire();
  }

  setStatus(status, text) {
    this.status = status;
    this.els.section.dataset.ask = status;
    this.els.status.textContent = text;
    this.els.form.hidden = status !== 'ready';
    this.els.progress.hidden = status !== 'loading';
    this.update(this.page.ready(), this.page.generating());
  }

  // The tab was opened, or the bundle (re)loaded while it is open: fetch the parts once.
  open() {
    if (!this.page.ready() || !['idle', 'error'].includes(this.status)) return;
    this.els.error.replaceChildren();
    this.loaded.clear();
    this.els.progress.removeAttribute('value');
    this.setStatus('loading', 'Loading the passages…');
    this.client.loadAsk();
  }

  // A new bundle is loaded: its session has no passages yet.
  onBundleReady(hasAsk) {
    this.finish();
    if (hasAsk) this.setStatus('idle', '');
    else this.setStatus('absent', 'This build of the page has no passages to answer from.');
  }

  // Both parts' bytes, summed.
  onProgress(m) {
    if (this.status !== 'loading' || !m.total) return;
    this.loaded.set(m.asset, [m.loaded, m.total]);
    let loaded = 0;
    let total = 0;
    for (const [l, t] of this.loaded.values()) { loaded += l; total += t; }
    total = Math.max(total, m.overall_total || 0);
    this.els.progress.max = 100;
    this.els.progress.value = pct(loaded, total);
    this.els.status.textContent =
      `Loading the passages… ${mb(loaded)} / ${mb(total)} MB (${pct(loaded, total)}%)`;
  }

  onReady(m) {
    const from = m.cached_bytes > 0 ? 'from cache' : `${num(m.downloaded_bytes / 1e6, 1)} MB downloaded`;
    this.setStatus('ready', `${m.passages.toLocaleString('en-US')} passages about ` +
      `${m.documents.toLocaleString('en-US')} movies · loaded in ${num(m.load_ms, 0)} ms (${from})`);
  }

  // An error about this view's requests; a failed load offers a retry.
  onError(m, loading) {
    if (loading) {
      const retry = el('button', null, 'Retry');
      retry.type = 'button';
      retry.addEventListener('click', () => this.open());
      this.els.error.replaceChildren(el('p', null, m.message || 'Something went wrong.'), retry);
      this.setStatus('error', '');
      return;
    }
    // A bad question (empty, too long) is the engine's message, shown by the box.
    this.setQuestionError(m.message || 'Something went wrong.');
    this.els.stats.textContent = '';
    this.finish();
  }

  setQuestionError(message) {
    this.els.questionError.textContent = message;
    if (message) this.els.question.setAttribute('aria-invalid', 'true');
    else this.els.question.removeAttribute('aria-invalid');
  }

  submit(event) {
    event.preventDefault();
    if (!this.page.ready() || this.page.generating() || this.status !== 'ready') return;
    const question = this.els.question.value.trim();
    if (!question) {
      this.setQuestionError('Please type a question first.');
      this.els.question.focus();
      return;
    }
    // Longer ones go to the engine, whose message names the limit (one place checks it).
    this.setQuestionError('');
    this.page.clearError();
    const { els } = this;
    els.answer.textContent = '';
    els.answer.removeAttribute('data-stop');
    els.answer.removeAttribute('data-unknown');
    els.answer.setAttribute('aria-busy', 'true');
    els.note.textContent = '';
    els.stats.textContent = 'Searching the passages…';
    els.list.replaceChildren();
    els.listStats.textContent = '';
    this.sentAt = performance.now();
    this.answering = true;
    this.page.setState('generating');
    this.client.ask({ question });
  }

  stop() {
    if (!this.answering) return;
    this.els.stop.disabled = true; // the worker answers with done{stop:'cancelled'}
    this.client.cancel();
  }

  onAnswered(m) {
    const { els } = this;
    this.passages = m.passages || [];
    this.retrieval = `retrieval ${num(m.embed_ms + m.search_ms, 0)} ms`;
    els.list.replaceChildren(...this.passages.map((p, i) => renderPassage(p, i < m.passages_in_prompt)));
    els.listStats.textContent = `question embedded in ${num(m.embed_ms, 1)} ms · ` +
      `searched in ${num(m.search_ms, 1)} ms (MiniLM + BM25)`;
    if (m.unknown) {
      // What the engine decides on: the best similarity among the passages (task::ask::relevance).
      const best = this.passages.length ? Math.max(...this.passages.map((p) => p.cosine)) : null;
      els.answer.textContent = "I don't know.";
      els.answer.dataset.unknown = 'true';
      els.note.textContent = 'No passage is close enough to the question to answer from ' +
        `(the closest one's similarity is ${num(best, 2) ?? '–'}, below ${num(ASK_DEFAULTS.min_relevance, 2)}). ` +
        'The nearest ones are below, for what they are worth.';
      els.stats.textContent = this.retrieval;
      this.finish('unknown');
    } else if (m.answering) {
      els.stats.textContent = `${this.retrieval} · reading ${m.passages_in_prompt} ` +
        `passage${m.passages_in_prompt === 1 ? '' : 's'} (${m.prompt_tokens} prompt tokens)…`;
    } else {
      els.note.textContent = 'This build of the page has no generator: the passages are below.';
      this.finish('');
    }
  }

  onToken(m) {
    if (!this.answering) return;
    this.els.answer.append(m.text || ''); // a text node: streamed pieces stay plain text
    const rate = num(m.tokens_per_s, 1);
    this.els.stats.textContent = `${this.retrieval} · ${m.tokens} tokens` + (rate ? ` · ${rate} tok/s` : '');
  }

  onDone(m) {
    const { els } = this;
    const answer = (m.text || '').trim();
    els.answer.textContent = answer;
    const parts = [this.retrieval, `${m.prompt_tokens} prompt tokens (${m.cached_prompt_tokens} cached)`];
    if (num(m.ttft_ms, 0)) parts.push(`first token ${num(m.ttft_ms, 0)} ms`);
    if (num(m.decode_tokens_per_s, 1)) parts.push(`${num(m.decode_tokens_per_s, 1)} tok/s`);
    parts.push(`${m.tokens ?? 0} tokens`);
    parts.push(m.stop === 'cancelled' ? 'stopped by you' : `stopped: ${STOP_LABELS[m.stop] || m.stop}`);
    els.stats.textContent = parts.join(' · ');
    if (!answer && m.stop !== 'cancelled') els.note.textContent = 'The model wrote nothing; the passages are below.';
    if (m.stop !== 'cancelled') this.markAnswer(answer);
    this.finish(m.stop || '');
  }

  // Marks the answer in the passages that hold it, as text between text nodes: the whole
  // answer when a passage holds it, else the names, titles and years in it (the small model
  // often answers in a sentence) that a passage holds.
  markAnswer(answer) {
    const whole = answer.replace(/[.\s]+$/, '');
    if (whole.length < 2) return;
    const names = whole.match(/\b\d{4}\b|[A-Z][\w'-]*(?: (?:[A-Z][\w'-]*|de|van|von))+/g) || [];
    const spansIn = (lower, needles) => needles.map((n) => [lower.indexOf(n.toLowerCase()), n.length])
      .filter(([at]) => at >= 0).sort((x, y) => x[0] - y[0]);
    this.els.list.querySelectorAll('.passage-text').forEach((p) => {
      const text = p.textContent;
      const lower = text.toLowerCase();
      const all = spansIn(lower, [whole]);
      const spans = all.length ? all : spansIn(lower, names);
      if (spans.length === 0) return;
      const nodes = []; // text and <mark>s, in order, never overlapping
      let from = 0;
      for (const [at, length] of spans) {
        if (at < from) continue;
        nodes.push(text.slice(from, at), el('mark', null, text.slice(at, at + length)));
        from = at + length;
      }
      p.replaceChildren(...nodes, text.slice(from));
      p.closest('li')?.setAttribute('data-holds-answer', 'true');
    });
  }

  // The answer is over (written, stopped, unknown or failed).
  finish(stop) {
    if (stop !== undefined) this.els.answer.dataset.stop = stop;
    this.els.answer.setAttribute('aria-busy', 'false');
    this.answering = false;
    this.update(this.page.ready(), this.page.generating());
  }

  // Buttons follow the page's state.
  update(ready, generating) {
    this.els.submit.disabled = !ready || generating || this.status !== 'ready';
    this.els.stop.disabled = !this.answering;
  }

  wire() {
    const { els } = this;
    els.form.addEventListener('submit', (e) => this.submit(e));
    els.stop.addEventListener('click', () => this.stop());
    els.question.addEventListener('input', () => {
      if (els.questionError.textContent) this.setQuestionError('');
      const over = bytes(els.question.value.trim()) > ASK_LIMITS.max_question_bytes;
      els.question.toggleAttribute('data-too-long', over);
    });
    els.examples.replaceChildren(...EXAMPLES.map((q) => {
      const chip = el('button', 'chip', q);
      chip.type = 'button';
      chip.addEventListener('click', () => {
        els.question.value = q;
        this.setQuestionError('');
        els.question.focus();
      });
      return chip;
    }));
  }
}

function renderPassage(p, inPrompt) {
  const li = el('li', 'movie passage');
  li.dataset.movie = String(p.movie);
  if (inPrompt) li.dataset.inPrompt = 'true';
  const h3 = el('h3');
  h3.append(el('span', 'movie-title', p.year != null ? `${p.title} (${p.year})` : p.title),
    el('span', 'score', `similarity ${num(p.cosine, 2) ?? '–'}`));
  if (inPrompt) h3.append(el('span', 'badge', 'read by the model'));
  li.append(h3, el('p', 'passage-text', p.text));
  return li;
}
