// The Recommend tab's data helpers, no DOM: the visitor's ratings kept in localStorage,
// and search-as-you-type over the recs part's titles.

const STORAGE_KEY = 'marquee-ratings-v1';

// Lower case, accents and punctuation dropped, so "Amelie" finds "Amélie" and "se7en"
// finds "Seven (Se7en)".
export function normalise(text) {
  return String(text).normalize('NFD').replace(/\p{Diacritic}/gu, '')
    .toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ').trim();
}

// The part's movies ({title, year}) prepared for `search`.
export function searchIndex(movies) {
  return movies.map((m, i) => ({ movie: i, key: ` ${normalise(`${m.title} ${m.year ?? ''}`)} ` }));
}

// Up to `limit` movie numbers whose title holds every word of `query` at a word's start;
// titles that start with the query come first, then shorter ones.
export function search(index, query, limit = 8) {
  const words = normalise(query).split(' ').filter(Boolean);
  if (words.length === 0) return [];
  const whole = ` ${words.join(' ')}`;
  const found = index.filter((entry) => words.every((w) => entry.key.includes(` ${w}`)));
  found.sort((a, b) => Number(b.key.startsWith(whole)) - Number(a.key.startsWith(whole))
    || a.key.length - b.key.length || a.movie - b.movie);
  return found.slice(0, limit).map((entry) => entry.movie);
}

// The saved ratings ([{movie, stars}]) that still name the same movies in `movies`: each is
// saved with its title and year, so a rebuilt part with other numbers finds them again,
// and one it no longer has is dropped.
export function loadRatings(movies) {
  let saved;
  try {
    saved = JSON.parse(localStorage.getItem(STORAGE_KEY) ?? 'null');
  } catch {
    return [];
  }
  if (!Array.isArray(saved?.ratings)) return [];
  const same = (m, r) => m && m.title === r.title && (m.year ?? null) === (r.year ?? null);
  const out = [];
  for (const r of saved.ratings) {
    const stars = Number(r?.stars);
    if (!Number.isInteger(stars) || stars < 1 || stars > 5) continue;
    const movie = same(movies[r.movie], r) ? r.movie : movies.findIndex((m) => same(m, r));
    if (movie >= 0 && !out.some((o) => o.movie === movie)) out.push({ movie, stars });
  }
  return out;
}

// Saves `ratings` ([{movie, stars}]) with their titles; storage being off or full only
// means they will not survive the visit.
export function saveRatings(ratings, movies) {
  try {
    if (ratings.length === 0) {
      localStorage.removeItem(STORAGE_KEY);
      return true;
    }
    const entries = ratings.map(({ movie, stars }) => ({
      movie, stars, title: movies[movie]?.title, year: movies[movie]?.year ?? null,
    }));
    localStorage.setItem(STORAGE_KEY, JSON.stringify({ version: 1, ratings: entries }));
    return true;
  } catch {
    return false;
  }
}
