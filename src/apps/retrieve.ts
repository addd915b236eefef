// Retrieval: rank the images of a folder (the gallery) by their score against a query image.
//
// The query takes role A and every gallery image role B, as `diffsim score QUERY PATH` has them, so
// each listed score is that command's score bit for bit. Gallery embeddings come from an on-disk
// cache when it has them for the file as it is (see embedding-cache.ts) and are written there
// otherwise; the query's is made afresh. One gallery embedding is alive at a time.

import { realpath, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { toRgbImage, type ImageInput, type Metric } from '../diffsim/metric.js';
import { FileError } from '../io/errors.js';
import { EmbeddingCache } from './embedding-cache.js';
import { CACHE_FOLDER, codeUnitCompare, IMAGE_EXTENSIONS, listImages } from './images.js';

export interface RetrieveOptions {
  /** How many results (default 10; more than the gallery holds gives all). */
  k?: number;
  /** The embedding cache folder, or false for none (default `<dir>/.diffsim-cache`). */
  cache?: string | false;
  /** Called once with done 0 (path null) when the query is embedded, then after each gallery image. */
  onProgress?: (p: { done: number; total: number; path: string | null; fromCache: boolean }) => void;
  /** Cache warnings (default: one line on stderr each). */
  onWarning?: (message: string) => void;
}

export interface RetrievalResult {
  /** `join(dir, rel)`: the path `diffsim score QUERY PATH` takes. */
  path: string;
  /** The path relative to the gallery, '/'-separated. */
  rel: string;
  score: number;
}

export interface Retrieval {
  /** The top k, best first (lowest first for a lowerBetter metric), equal scores by path. */
  results: RetrievalResult[];
  k: number;
  /** Gallery images scored. */
  gallery: number;
  /** Gallery images embedded in this call. */
  embedded: number;
  /** Gallery embeddings read from the cache. */
  fromCache: number;
  /** The cache folder used, or null. */
  cache: string | null;
  /** Whether the query file lay in the gallery and was left out of it. */
  queryExcluded: boolean;
}

/** Best first: higher scores (lower for lowerBetter), then by path; a NaN score goes last. */
export function rankResults<T extends { rel: string; score: number }>(results: T[], lowerBetter: boolean): T[] {
  return results.sort((a, b) => {
    const na = Number.isNaN(a.score);
    const nb = Number.isNaN(b.score);
    if (na || nb) return na === nb ? codeUnitCompare(a.rel, b.rel) : na ? 1 : -1;
    const d = lowerBetter ? a.score - b.score : b.score - a.score;
    return d !== 0 ? d : codeUnitCompare(a.rel, b.rel);
  });
}

/** Ranks the images under `dir` (recursively; .png .jpg .jpeg .bmp, any case; sorted by relative
 *  path; the cache folder and the query file itself left out) by `metric`'s score against `query`. */
export async function retrieve(metric: Metric, query: ImageInput, dir: string, o: RetrieveOptions = {}): Promise<Retrieval> {
  const k = o.k ?? 10;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`retrieve: k must be a positive integer, got ${k}`);
  const cacheDir = o.cache === false ? null : resolve(o.cache ?? resolve(dir, CACHE_FOLDER));
  let listed = await listImages(dir, { recursive: true, excludeDirs: cacheDir ? [cacheDir] : [] });
  let queryExcluded = false;
  if (typeof query === 'string') {
    const q = await realpath(query).catch(() => resolve(query));
    const kept = [];
    for (const x of listed) {
      if ((await realpath(x.path).catch(() => resolve(x.path))) === q) queryExcluded = true;
      else kept.push(x);
    }
    listed = kept;
  }
  if (!listed.length) throw new FileError(dir, `no images (${IMAGE_EXTENSIONS.join(' ')}) in the folder${queryExcluded ? ' besides the query' : ''}`);

  const q = await metric.embed(await toRgbImage(query, typeof query === 'string' ? query : 'query'), 'A');
  const cache = cacheDir ? await EmbeddingCache.open(dir, metric, { dir: cacheDir, ...(o.onWarning ? { onWarning: o.onWarning } : {}) }) : undefined;
  let embedded = 0;
  let fromCache = 0;
  const scored: RetrievalResult[] = [];
  try {
    o.onProgress?.({ done: 0, total: listed.length, path: null, fromCache: false });
    for (const x of listed) {
      let e = cache ? await cache.get(x.path, 'B') : undefined;
      const hit = e !== undefined;
      if (!e) {
        const st = await stat(x.path).catch((err: NodeJS.ErrnoException) => {
          throw new FileError(x.path, `cannot read (${err.code ?? err.message})`);
        });
        e = await metric.embed(await toRgbImage(x.path, x.path), 'B');
        embedded++;
        try {
          await cache?.put(x.path, 'B', e, st);
        } catch (err) {
          e.dispose();
          throw err;
        }
      } else fromCache++;
      try {
        scored.push({ path: x.path, rel: x.rel, score: await metric.compare(q, e) });
      } finally {
        e.dispose();
      }
      o.onProgress?.({ done: scored.length, total: listed.length, path: x.path, fromCache: hit });
    }
  } finally {
    q.dispose();
  }
  return { results: rankResults(scored, metric.lowerBetter).slice(0, k), k, gallery: listed.length, embedded, fromCache, cache: cacheDir, queryExcluded };
}
