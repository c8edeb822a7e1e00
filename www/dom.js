// Small DOM and formatting helpers shared by the page's views.

export const $ = (id) => document.getElementById(id);

export const mb = (bytes) => (bytes / 1e6).toFixed(1);
export const pct = (part, whole) => Math.min(100, Math.floor((part / whole) * 100));
export const num = (v, digits) =>
  (typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : null);

// An element whose text is set as text (never parsed as HTML).
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}
