// `diffsim retrieve QUERY DIR -k K`: the K gallery images closest to QUERY, best first, each with the
// score `diffsim score QUERY PATH` gives (the query in role A, the gallery image in role B).

import { toRgbImage } from '../diffsim/metric.js';
import { retrieve, type Retrieval } from '../apps/retrieve.js';
import { renderRetrievalGrid } from '../apps/plot.js';
import { writeFileAtomic } from '../io/atomic.js';
import { CACHE_FOLDER, IMAGE_EXTENSIONS, listImages } from '../apps/images.js';
import { FileError } from '../io/errors.js';
import { closeMetrics, openMetrics, parseCommand } from './metric-options.js';
import { UsageError } from './errors.js';
import { printJson, PRETTY_USAGE } from './json.js';
import { ItemProgress } from './progress.js';
import { basename, resolve } from 'node:path';

export const RETRIEVE_USAGE = `  retrieve QUERY DIR [-k K] [--json] [--grid FILE.png] [--cache DIR | --no-cache] [metric options]
                           the K images under DIR closest to QUERY, best first (lowest first for
                           --similarity mse; equal scores by path): "score<TAB>path" per line, each
                           score what \`score QUERY PATH\` prints. DIR is searched recursively for .png .jpg
                           .jpeg .bmp (any case); QUERY itself is left out if it lies in DIR
    -k K                   how many (default 10; more than the gallery gives all)
    --cache DIR            where gallery embeddings are kept (default DIR/${CACHE_FOLDER}); an entry is
                           reused while the image's size and mtime and the metric settings are unchanged
    --no-cache             neither read nor write the cache
    --metric M1,M2,…       several metrics (e.g. diffsim,clip,dino): one ranking each, lines "metric<TAB>score<TAB>path"
    --grid FILE.png        the query and its K neighbours as thumbnails with their scores, one row per metric
    --json                 one line on stdout, one JSON object: query, dir, k, the settings, results [{ path, score }]
${PRETTY_USAGE}
                           (the metric options are score's; --metric ensemble is not a pair score and is refused)`;

export async function retrieveCommand(args: string[]): Promise<number> {
  const p = parseCommand('retrieve', args, { valueOptions: ['k', 'cache', 'grid'], flags: ['json', 'no-cache'], aliases: { '-k': 'k' }, ensemble: true, metricList: true });
  if (p.metric.metrics.includes('ensemble')) {
    throw new UsageError('retrieve: --metric ensemble is a majority vote between two candidates, not a score of one pair; rank by one metric (diffsim, clip, dino, …)');
  }
  if (p.positional.length !== 2) throw new UsageError(`retrieve: expected QUERY and DIR, got ${p.positional.length} argument${p.positional.length === 1 ? '' : 's'}${p.positional.length > 2 ? ` (${p.positional.join(' ')})` : ''}`);
  const [query, dir] = p.positional as [string, string];
  const kText = p.options.get('k');
  let k = 10;
  if (kText !== undefined) {
    if (!/^\+?\d+$/.test(kText) || Number(kText) < 1 || !Number.isSafeInteger(Number(kText))) throw new UsageError(`retrieve: -k must be a positive integer, got ${JSON.stringify(kText)}`);
    k = Number(kText);
  }
  const cacheOpt = p.options.get('cache');
  if (cacheOpt !== undefined && p.flags.has('no-cache')) throw new UsageError('retrieve: give --cache DIR or --no-cache, not both');
  if (cacheOpt === '') throw new UsageError('retrieve: --cache needs a folder');
  const cache: string | false = p.flags.has('no-cache') ? false : resolve(cacheOpt ?? resolve(dir, CACHE_FOLDER));

  // The folder and the query are checked before any model is loaded.
  const listed = await listImages(dir, { recursive: true, excludeDirs: cache ? [cache] : [] });
  await toRgbImage(query);
  if (!listed.length) throw new FileError(dir, `no images (${IMAGE_EXTENSIONS.join(' ')}) in the folder`);

  const grid = p.options.get('grid');
  if (grid === '') throw new UsageError('retrieve: --grid needs a file name');
  const started = performance.now();
  const metrics = await openMetrics('retrieve', p.metric);
  try {
    const rankings = [];
    for (const metric of metrics) {
      let progress: ItemProgress | undefined;
      // The closing progress line also on an error: how far it got (and a terminal's redrawn line ended).
      const r = await retrieve(metric, query, dir, {
        k,
        cache,
        onProgress: ({ done, total }) => {
          if (done === 0) progress = new ItemProgress(total, `retrieve: ${dir}${metrics.length > 1 ? ` (${metric.name})` : ''}`, { unit: 'images' });
          else progress?.tick();
        },
      }).finally(() => progress?.finish());
      process.stderr.write(`retrieve: ${metrics.length > 1 ? `${metric.name}: ` : ''}${r.gallery} images, ${r.embedded} embedded, ${r.fromCache} from the cache${r.cache ? ` (${r.cache})` : ''}\n`);
      rankings.push({ metric, r });
    }
    if (grid !== undefined) {
      const png = renderRetrievalGrid(
        await toRgbImage(query),
        await Promise.all(rankings.map(async ({ metric, r }) => ({ label: metric.name, results: await Promise.all(r.results.map(async (x) => ({ image: await toRgbImage(x.path), score: x.score, name: x.rel }))) }))),
        { title: `retrieve ${basename(query)} · top ${k}` },
      );
      await writeFileAtomic(grid, png);
    }
    const seconds = Number(((performance.now() - started) / 1000).toFixed(3));
    const one = (metric: (typeof metrics)[number], r: Retrieval) => ({ ...metric.settings, gallery: r.gallery, embedded: r.embedded, fromCache: r.fromCache, cache: r.cache, queryExcluded: r.queryExcluded, results: r.results.map((x) => ({ path: x.path, score: x.score })) });
    if (p.flags.has('json')) {
      if (rankings.length === 1) printJson({ query, dir, k, ...one(rankings[0]!.metric, rankings[0]!.r), ...(grid !== undefined ? { grid } : {}), seconds }, p.flags.has('pretty'));
      else printJson({ query, dir, k, metrics: rankings.map(({ metric, r }) => ({ metric: metric.name, ...one(metric, r) })), ...(grid !== undefined ? { grid } : {}), seconds }, p.flags.has('pretty'));
    } else {
      for (const { metric, r } of rankings) for (const x of r.results) console.log(rankings.length === 1 ? `${x.score}\t${x.path}` : `${metric.name}\t${x.score}\t${x.path}`);
    }
    return 0;
  } finally {
    await closeMetrics(metrics);
  }
}
