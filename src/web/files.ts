// Reading a model's small files (configs, tokenizer tables) from ModelFiles.

import type { ModelFiles } from './hub.js';

export function join(dir: string, name: string): string {
  return dir ? `${dir}/${name}` : name;
}

export async function readText(files: ModelFiles, path: string): Promise<string> {
  return (await files.blob(path)).text();
}

export async function readJson<T>(files: ModelFiles, path: string, what: string): Promise<T> {
  if (!files.paths.includes(path)) throw new Error(`${files.name}/${path}: no ${what} (the model has ${files.paths.length} files: ${files.paths.slice(0, 8).join(', ')}${files.paths.length > 8 ? ', …' : ''})`);
  const text = await readText(files, path);
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${files.name}/${path}: the ${what} is not valid JSON (${(e as Error).message})`);
  }
}

export async function optionalJson<T>(files: ModelFiles, path: string, what: string): Promise<T | undefined> {
  return files.paths.includes(path) ? readJson<T>(files, path, what) : undefined;
}
