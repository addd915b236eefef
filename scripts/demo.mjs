#!/usr/bin/env node
// Builds the demo page (demo/ → build/demo-site/: index.html and the esbuild bundle app.js) and
// serves it on 127.0.0.1. `node scripts/demo.mjs [--port N] [--build-only]`; the port also comes
// from $PORT (default 8080, 0 for any free port). Prints the page's URL on stdout.
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { dirname, extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SITE = join(root, 'build', 'demo-site');

/** Bundles demo/main.ts for browsers (no Node module may be reached: the build fails if one is). */
export async function buildDemo(out = SITE) {
  const esbuild = await import('esbuild');
  await mkdir(out, { recursive: true });
  const result = await esbuild.build({
    entryPoints: [join(root, 'demo', 'main.ts')],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    outfile: join(out, 'app.js'),
    sourcemap: true,
    metafile: true,
    logLevel: 'warning',
  });
  const imports = Object.values(result.metafile.outputs).flatMap((o) => o.imports.map((i) => i.path));
  if (imports.length) throw new Error(`the demo bundle still imports ${imports.join(', ')}`);
  await copyFile(join(root, 'demo', 'index.html'), join(out, 'index.html'));
  return out;
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.map': 'application/json', '.png': 'image/png', '.json': 'application/json' };

/** A static file server for `dir` on 127.0.0.1; resolves to { url, close }. */
export function serveStatic(dir, port = 0) {
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const file = normalize(join(dir, path.endsWith('/') ? `${path}index.html` : path));
    if (!file.startsWith(dir + sep) && file !== dir) {
      res.writeHead(403).end();
      return;
    }
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
      res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(await readFile(file));
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address();
      resolve({ url: `http://127.0.0.1:${p}/`, close: () => new Promise((r) => server.close(() => r())) });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  const args = process.argv.slice(2);
  const i = args.indexOf('--port');
  const port = Number(i >= 0 ? args[i + 1] : (process.env.PORT ?? 8080));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`demo: --port ${i >= 0 ? args[i + 1] : process.env.PORT}: expected a port number (0–65535)`);
    process.exit(2);
  }
  const dir = await buildDemo();
  if (!args.includes('--build-only')) {
    const { url } = await serveStatic(dir, port);
    console.log(url);
  } else console.log(dir);
}
