// A fake Hugging Face hub on 127.0.0.1 for the hub tests: model and dataset repos (the dataset routes
// are the model ones with `datasets/` before the id: /api/datasets/{id}/…, /datasets/{id}/resolve/…),
// the repo-info and tree APIs, HEAD/GET on resolve/ (regular files with their git blob sha1 as ETag; LFS files answered with a 302 to a
// /cdn/ URL on the same server, with X-Linked-Etag = sha256 and X-Linked-Size), Range requests,
// tokens, gated repos, hub error codes, and faults on demand (a connection cut after N bytes, a
// corrupted body, a server that ignores Range; hostile headers and listings: an ETag or commit
// that is a path, file names leaving the repo, a redirect loop). Every request is logged.

import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface FakeFile {
  content: Uint8Array;
  /** Stored in LFS: ETag is the sha256, served through a redirect to /cdn/. */
  lfs?: boolean;
  /** Send the ETag in its weak form, `W/"…"`. */
  weakEtag?: boolean;
}

export interface FakeRepo {
  commit: string;
  files: Record<string, FakeFile>;
  /** Private: requests must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** Gated: without the token, 403 with X-Error-Code GatedRepo. */
  gated?: boolean;
}

export interface LoggedRequest {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingHttpHeaders;
}

export function sha256Hex(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

/** git's blob id: sha1("blob <size>\0" + content). */
export function gitBlobSha1(b: Uint8Array): string {
  return createHash('sha1').update(`blob ${b.byteLength}\0`).update(b).digest('hex');
}

export function lfsPointer(b: Uint8Array): Uint8Array {
  return new TextEncoder().encode(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha256Hex(b)}\nsize ${b.byteLength}\n`);
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let a = seed >>> 0;
  for (let i = 0; i < n; i++) {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    out[i] = a >>> 24;
  }
  return out;
}

export function text(s: string): Uint8Array {
  return new TextEncoder().encode(s);
}

export class FakeHub {
  readonly requests: LoggedRequest[] = [];
  /** CDN GETs of this sha256 stop after this many bytes and the socket is destroyed (once per entry). */
  readonly cutAfter = new Map<string, number>();
  /** Repo paths (`org/name:path`, `datasets/org/name:path`) whose body is served with one byte flipped. */
  readonly corrupt = new Set<string>();
  /** Answer 200 with the whole file to Range requests. */
  ignoreRange = false;
  /** Entries per page of the tree API (pagination through `Link: <…>; rel="next"`). */
  treePageSize = 3;
  /** The host name in the redirect to /cdn/ (same server; `localhost` makes it look like another host,
   *  as the hub's CDN is: huggingface_hub ≥ 2 follows redirects to the same host name on its HEAD). */
  cdnHost = '127.0.0.1';
  /** LFS redirects carry only a Location; the /cdn/ answer carries X-Repo-Commit and ETag instead
   *  (a mirror that leaves the metadata to the redirect target). */
  bareRedirects = false;
  /** Pause between 16 kB pieces of a body (a slow link), in ms. */
  chunkDelayMs = 0;
  /** Answer cross-origin requests as the hub does for pages on other origins (browsers): CORS
   *  headers on every answer, its metadata headers exposed, preflights answered. */
  cors = false;
  /** Headers that replace the hub's own on the resolve answers (HEAD and GET) of a repo path
   *  (`org/name:path`): a hostile hub or mirror (an ETag or commit that is a path, a non-sha256
   *  X-Linked-Etag); `null` removes a header. */
  readonly resolveHeaders = new Map<string, Record<string, string | null>>();
  /** More entries for a repo's tree listing and repo info (`org/name`, `datasets/org/name`), as a
   *  hostile listing would send them: tree entries as written, sibling names as `rfilename`s. */
  readonly extraTree = new Map<string, unknown[]>();
  readonly extraSiblings = new Map<string, unknown[]>();
  /** The revision API's `sha` for a repo (`org/name`), instead of its commit. */
  readonly shaOverride = new Map<string, unknown>();
  /** Answers a request before the fake hub does, when it returns true (a redirect loop, …). */
  intercept: ((req: IncomingMessage, res: ServerResponse, url: URL) => boolean) | undefined;
  private server: Server | undefined;
  private sockets = new Set<Socket>();
  url = '';

  /** `repos` are model repos, `datasets` dataset repos (an id may be both: they are separate repos). */
  constructor(
    readonly repos: Record<string, FakeRepo>,
    readonly datasets: Record<string, FakeRepo> = {},
  ) {}

  private reposOf(type: 'model' | 'dataset'): Record<string, FakeRepo> {
    return type === 'dataset' ? this.datasets : this.repos;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    this.server = server;
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((r) => s.close(() => r()));
  }

  /** The logged requests whose URL contains `part`. */
  requestsFor(part: string): LoggedRequest[] {
    return this.requests.filter((r) => decodeURIComponent(r.url).includes(part));
  }

  clearLog(): void {
    this.requests.length = 0;
  }

  private fail(res: ServerResponse, status: number, code: string | undefined, headers: Record<string, string> = {}): void {
    const h: Record<string, string> = { 'content-type': 'application/json', ...headers };
    if (code) h['x-error-code'] = code;
    res.writeHead(status, h);
    res.end(JSON.stringify({ error: code ?? `HTTP ${status}` }));
  }

  /** The repo, or an error answer when it is missing or not accessible with the request's token. */
  private access(req: IncomingMessage, res: ServerResponse, type: 'model' | 'dataset', repoId: string): FakeRepo | undefined {
    const repo = Object.hasOwn(this.reposOf(type), repoId) ? this.reposOf(type)[repoId] : undefined;
    if (!repo) {
      this.fail(res, 401, 'RepoNotFound');
      return undefined;
    }
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      if (repo.gated) this.fail(res, 403, 'GatedRepo');
      else this.fail(res, 401, 'RepoNotFound');
      return undefined;
    }
    return repo;
  }

  private commitOf(repo: FakeRepo, rev: string): string | undefined {
    return rev === 'main' || rev === repo.commit ? repo.commit : undefined;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
    if (this.cors) {
      res.setHeader('access-control-allow-origin', '*');
      res.setHeader('access-control-expose-headers', 'X-Repo-Commit, X-Linked-Size, X-Linked-Etag, ETag, Content-Length, Content-Range, Link, X-Error-Code');
      if (req.method === 'OPTIONS') {
        res.writeHead(204, { 'access-control-allow-methods': 'GET, HEAD', 'access-control-allow-headers': 'authorization, range', 'access-control-max-age': '600' });
        res.end();
        return;
      }
    }
    const u = new URL(req.url ?? '/', this.url);
    if (this.intercept?.(req, res, u)) return;
    const parts = u.pathname.split('/').slice(1).map(decodeURIComponent);
    if (parts[0] === 'api' && parts[1] === 'models') return this.api(req, res, 'model', parts.slice(2), u);
    if (parts[0] === 'api' && parts[1] === 'datasets') return this.api(req, res, 'dataset', parts.slice(2), u);
    if (parts[0] === 'cdn') return this.cdn(req, res, parts[1] ?? '');
    const type = parts[0] === 'datasets' ? 'dataset' : 'model';
    const from = type === 'dataset' ? 1 : 0;
    const r = parts.indexOf('resolve');
    if (r >= from + 1) return this.resolve(req, res, type, parts.slice(from, r).join('/'), parts[r + 1] ?? '', parts.slice(r + 2).join('/'));
    this.fail(res, 404, undefined);
  }

  private api(req: IncomingMessage, res: ServerResponse, type: 'model' | 'dataset', parts: string[], u: URL): void {
    const k = parts.findIndex((p) => p === 'revision' || p === 'tree');
    if (k < 1) return this.fail(res, 404, undefined);
    const repoId = parts.slice(0, k).join('/');
    const repo = this.access(req, res, type, repoId);
    if (!repo) return;
    const commit = this.commitOf(repo, parts[k + 1] ?? '');
    if (!commit) return this.fail(res, 404, 'RevisionNotFound');
    res.setHeader('content-type', 'application/json');
    if (parts[k] === 'revision') {
      // ?blobs=true adds each file's size (and its LFS size), as the hub does.
      const blobs = u.searchParams.get('blobs') === 'true';
      const siblings = Object.entries(repo.files).map(([rfilename, f]) =>
        blobs ? { rfilename, size: f.content.byteLength, ...(f.lfs ? { lfs: { sha256: sha256Hex(f.content), size: f.content.byteLength, pointerSize: lfsPointer(f.content).byteLength } } : {}) } : { rfilename },
      );
      const key = type === 'dataset' ? `datasets/${repoId}` : repoId;
      siblings.push(...((this.extraSiblings.get(key) ?? []).map((rfilename) => ({ rfilename, size: 1 })) as typeof siblings));
      res.end(JSON.stringify({ id: repoId, sha: this.shaOverride.has(key) ? this.shaOverride.get(key) : commit, siblings }));
      return;
    }
    const dirs = new Set<string>();
    for (const p of Object.keys(repo.files)) {
      const segs = p.split('/');
      for (let i = 1; i < segs.length; i++) dirs.add(segs.slice(0, i).join('/'));
    }
    const entries: unknown[] = [...dirs].map((path) => ({ type: 'directory', oid: gitBlobSha1(text(path)), size: 0, path }));
    for (const [path, f] of Object.entries(repo.files)) {
      const e: Record<string, unknown> = { type: 'file', path, size: f.content.byteLength, oid: gitBlobSha1(f.lfs ? lfsPointer(f.content) : f.content) };
      if (f.lfs) e.lfs = { oid: sha256Hex(f.content), size: f.content.byteLength, pointerSize: lfsPointer(f.content).byteLength };
      entries.push(e);
    }
    entries.push(...(this.extraTree.get(type === 'dataset' ? `datasets/${repoId}` : repoId) ?? []));
    const cursor = Number(u.searchParams.get('cursor') ?? '0');
    const page = entries.slice(cursor, cursor + this.treePageSize);
    if (cursor + this.treePageSize < entries.length) {
      const next = new URL(u.toString());
      next.searchParams.set('cursor', String(cursor + this.treePageSize));
      res.setHeader('link', `<${next.toString()}>; rel="next"`);
    }
    res.end(JSON.stringify(page));
  }

  private resolve(req: IncomingMessage, res: ServerResponse, type: 'model' | 'dataset', repoId: string, rev: string, path: string): void {
    const repo = this.access(req, res, type, repoId);
    if (!repo) return;
    const commit = this.commitOf(repo, rev);
    if (!commit) return this.fail(res, 404, 'RevisionNotFound');
    const key = type === 'dataset' ? `datasets/${repoId}` : repoId;
    const f = Object.hasOwn(repo.files, path) ? repo.files[path] : undefined;
    if (!f) return this.fail(res, 404, 'EntryNotFound', { 'x-repo-commit': commit });
    if (f.lfs) {
      const sha = sha256Hex(f.content);
      const location = `${this.url.replace('127.0.0.1', this.cdnHost)}/cdn/${sha}?repo=${encodeURIComponent(key)}&path=${encodeURIComponent(path)}`;
      if (this.bareRedirects) {
        res.writeHead(302, { location });
        res.end();
        return;
      }
      res.writeHead(302, this.hostile({
        location,
        'x-repo-commit': commit,
        'x-linked-etag': `"${sha}"`,
        'x-linked-size': String(f.content.byteLength),
        etag: `"${gitBlobSha1(lfsPointer(f.content))}"`,
        'content-length': '0',
      }, key, path));
      res.end();
      return;
    }
    const etag = `"${gitBlobSha1(f.content)}"`;
    this.body(req, res, this.served(key, path, f.content), this.hostile({ 'x-repo-commit': commit, etag: f.weakEtag ? `W/${etag}` : etag }, key, path), undefined);
  }

  /** `headers` with the {@link resolveHeaders} of `key:path` applied. */
  private hostile(headers: Record<string, string>, key: string, path: string): Record<string, string> {
    const out = { ...headers };
    for (const [k, v] of Object.entries(this.resolveHeaders.get(`${key}:${path}`) ?? {})) {
      if (v === null) delete out[k];
      else out[k] = v;
    }
    return out;
  }

  private cdn(req: IncomingMessage, res: ServerResponse, sha: string): void {
    const all = [...Object.entries(this.repos), ...Object.entries(this.datasets).map(([id, r]) => [`datasets/${id}`, r] as const)];
    for (const [key, repo] of all) {
      for (const [path, f] of Object.entries(repo.files)) {
        if (f.lfs && sha256Hex(f.content) === sha) {
          const h: Record<string, string> = { etag: `"${sha}"` };
          if (this.bareRedirects) h['x-repo-commit'] = repo.commit;
          return this.body(req, res, this.served(key, path, f.content), h, sha);
        }
      }
    }
    this.fail(res, 404, undefined);
  }

  private served(repoId: string, path: string, content: Uint8Array): Uint8Array {
    if (!this.corrupt.has(`${repoId}:${path}`)) return content;
    const c = content.slice();
    c[c.length >> 1] ^= 0xff;
    return c;
  }

  private body(req: IncomingMessage, res: ServerResponse, content: Uint8Array, headers: Record<string, string>, cutKey: string | undefined): void {
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m && !this.ignoreRange) {
      start = Number(m[1]);
      if (start >= content.byteLength) {
        res.writeHead(416, { 'content-range': `bytes */${content.byteLength}` });
        res.end();
        return;
      }
    }
    const slice = content.subarray(start);
    const h: Record<string, string> = { ...headers, 'content-length': String(slice.byteLength), 'accept-ranges': 'bytes', 'content-type': 'application/octet-stream' };
    if (start > 0) h['content-range'] = `bytes ${start}-${content.byteLength - 1}/${content.byteLength}`;
    res.writeHead(start > 0 ? 206 : 200, h);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cut = cutKey === undefined ? undefined : this.cutAfter.get(cutKey);
    if (cut !== undefined) {
      this.cutAfter.delete(cutKey!);
      res.write(slice.subarray(0, cut), () => setTimeout(() => res.socket?.destroy(), 20));
      return;
    }
    if (this.chunkDelayMs > 0) {
      let at = 0;
      const step = (): void => {
        if (res.destroyed) return;
        if (at >= slice.byteLength) {
          res.end();
          return;
        }
        res.write(slice.subarray(at, at + 16384));
        at += 16384;
        setTimeout(step, this.chunkDelayMs);
      };
      step();
      return;
    }
    res.end(slice);
  }
}
