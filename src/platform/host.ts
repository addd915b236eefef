// Host modules that only the Node/Deno functions need (the file system, dawn.node), imported when
// such a function first runs. The specifier is passed through a variable, so a bundler building for
// browsers, where these functions are never called, neither resolves nor includes them.

const importByName = (specifier: string): Promise<unknown> => import(specifier);

/** `node:fs/promises` (Node ≥ 20, Deno 2). */
export function nodeFs(): Promise<typeof import('node:fs/promises')> {
  return importByName('node:fs/promises') as Promise<typeof import('node:fs/promises')>;
}

/** A package by name, e.g. `webgpu` (dawn.node). */
export function hostPackage<T>(name: string): Promise<T> {
  return importByName(name) as Promise<T>;
}

/** `dir` and `name` joined with the separator `dir` already uses ('/' unless it only has '\'). */
export function joinPath(dir: string, name: string): string {
  if (dir === '') return name;
  const sep = !dir.includes('/') && dir.includes('\\') ? '\\' : '/';
  return dir.endsWith('/') || dir.endsWith('\\') ? `${dir}${name}` : `${dir}${sep}${name}`;
}

/** The folder part of a path ('.' when it has none), as node:path's dirname. */
export function dirnameOf(path: string): string {
  const i = Math.max(path.lastIndexOf('/'), path.lastIndexOf('\\'));
  if (i < 0) return '.';
  if (i === 0) return path[0]!;
  return path.slice(0, i);
}

/** Whether a path is absolute (POSIX '/…', Windows 'C:\…', '\\server\…'). */
export function isAbsolutePath(path: string): boolean {
  return path.startsWith('/') || path.startsWith('\\') || /^[A-Za-z]:[\\/]/.test(path);
}
