// Relative paths that come from outside (a hub's file listing, a shard index's weight_map, a
// manifest): checked in this one place before they are joined to a folder, so that none of them
// can name a file outside that folder. Platform-neutral (no node:path): the browser hub uses it too.

/** The canonical form of a relative `/`-separated path (`.` segments and repeated `/` dropped), or
 *  why it is refused: empty, absolute (`/…`, `C:…`), with a `..` segment, a backslash, a NUL or
 *  another control character. */
export function checkRelativePath(path: string): { path: string } | { problem: string } {
  if (typeof path !== 'string' || path === '') return { problem: 'it is empty' };
  if (/[\0-\x1f\x7f]/.test(path)) return { problem: 'it contains a NUL or another control character' };
  if (path.includes('\\')) return { problem: "it contains a backslash (paths inside a repository are '/'-separated)" };
  if (path.startsWith('/')) return { problem: 'it is absolute' };
  if (/^[A-Za-z]:/.test(path)) return { problem: 'it starts with a drive letter' };
  const parts: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '..') return { problem: "it has a '..' segment" };
    if (seg === '' || seg === '.') continue;
    parts.push(seg);
  }
  if (!parts.length) return { problem: 'it names no file' };
  return { path: parts.join('/') };
}

/** A value quoted for a one-line message: JSON-escaped, cut to `max` characters. */
export function quoteValue(v: unknown, max = 120): string {
  const s = (typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? String(v)) ?? String(v);
  return s.length > max ? `${s.slice(0, max - 2)}…"` : s;
}
