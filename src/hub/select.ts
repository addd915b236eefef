// Which files of a repo a model needs: per component folder its configs and one set of
// safetensors weights (the requested variant such as fp16 when published, else the plain one;
// sharded checkpoints through their index), never .bin/.ckpt/.pt/.onnx/.msgpack/.h5 weights.

import { checkRelativePath, quoteValue } from '../io/relpath.js';
import { HubError } from './errors.js';
import { filterRepoPaths } from './paths.js';

// Repo paths are POSIX paths; these helpers keep the module free of node:path (browsers use it).
const posix = {
  basename: (p: string): string => p.slice(p.lastIndexOf('/') + 1),
  dirname: (p: string): string => (p.lastIndexOf('/') < 0 ? '.' : p.lastIndexOf('/') === 0 ? '/' : p.slice(0, p.lastIndexOf('/'))),
};

/** What to take from a repo. */
export interface FileSelection {
  /** Component folders to take (`''` is the repo root, `'unet'`, `'models/image_encoder'`); only the
   *  files directly in each folder. Default: every folder of the repo, where a diffusers pipeline's
   *  root (with `model_index.json`) gives its configs but not its single-file checkpoints. */
  components?: readonly string[];
  /** Paths or glob patterns always taken, whatever the rules below say. */
  include?: readonly string[];
  /** Weight variant to prefer where a folder publishes it (`fp16` → `*.fp16.safetensors`,
   *  `*.safetensors.index.fp16.json`). */
  variant?: string;
}

/** A selection with the folder {@link resolveModel} returns (for repos whose model sits below the root). */
export interface ModelSelection extends FileSelection {
  /** The folder inside the repo to return, e.g. `models` for h94/IP-Adapter. */
  subfolder?: string;
}

/** The files of the models DiffSim uses by default. */
export const MODEL_SELECTIONS: Readonly<Record<string, ModelSelection>> = {
  'stable-diffusion-v1-5/stable-diffusion-v1-5': { components: ['', 'unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'] },
  'runwayml/stable-diffusion-v1-5': { components: ['', 'unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'] },
  'stabilityai/stable-diffusion-xl-base-1.0': { components: ['', 'unet', 'vae', 'text_encoder', 'text_encoder_2', 'tokenizer', 'tokenizer_2', 'scheduler'], variant: 'fp16' },
  'h94/IP-Adapter': { include: ['models/ip-adapter-plus_sd15.safetensors'], components: ['models/image_encoder'], subfolder: 'models' },
  'openai/clip-vit-base-patch32': { components: [''] },
  'facebook/dinov2-small': { components: [''] },
  'timm/vgg16.tv_in1k': { components: [''] },
  'timm/vgg19.tv_in1k': { components: [''] },
};

/** Weight formats other than safetensors: never selected (only `include` can name them). */
const OTHER_WEIGHTS = /\.(bin|ckpt|pt|pth|onnx|onnx_data|pb|h5|msgpack|ot|gguf|tflite|pkl|pickle|npz|npy|joblib|mlmodel|engine|plan|keras|nemo|tar|zip|gz)$|\.(bin|msgpack|h5|pt|pth)\.index(\.[^.]+)?\.json$/;
/** Files a model folder needs besides weights: configs, vocabularies, merges, sentencepiece models. */
const SMALL_FILES = /\.(json|txt|model|yaml|yml|tiktoken)$/;
const SHARD = /-\d{5}-of-\d{5}/;
const VARIANT = /^[A-Za-z][\w-]*$/;

interface WeightUnit {
  path: string;
  index: boolean;
  variant: string | null;
}

/** The safetensors "unit" a file is (a single checkpoint, or a sharded checkpoint's index), with its
 *  variant; `undefined` for a shard or a file that is not safetensors weights. */
function weightUnit(path: string): WeightUnit | undefined {
  const name = posix.basename(path);
  let m = /^(.*)\.safetensors\.index(?:\.([^.]+))?\.json$/.exec(name);
  if (m) return { path, index: true, variant: m[2] ?? null };
  m = /^(.*)\.safetensors$/.exec(name);
  if (!m || SHARD.test(m[1]!)) return undefined;
  const dot = m[1]!.lastIndexOf('.');
  const v = dot > 0 ? m[1]!.slice(dot + 1) : '';
  return { path, index: false, variant: VARIANT.test(v) ? v : null };
}

function isWeight(path: string): boolean {
  return /\.safetensors$/.test(path) || /\.safetensors\.index(\.[^.]+)?\.json$/.test(path) || OTHER_WEIGHTS.test(path);
}

/** The files of `files` (repo paths) that `selection` asks for, sorted. Shards of a selected index are
 *  not listed here: they are named inside the index (see {@link shardsOf}). */
export function selectRepoFiles(files: readonly string[], selection: FileSelection = {}): string[] {
  const byFolder = new Map<string, string[]>();
  for (const f of files) {
    const dir = posix.dirname(f) === '.' ? '' : posix.dirname(f);
    if (!byFolder.has(dir)) byFolder.set(dir, []);
    byFolder.get(dir)!.push(f);
  }
  const pipelineRoot = files.includes('model_index.json');
  const out = new Set<string>(selection.include?.length ? filterRepoPaths(files, selection.include) : []);
  const folders = selection.components ?? [...byFolder.keys()];
  for (const folder of folders) {
    const dir = folder.replace(/^\/+|\/+$/g, '');
    const inDir = byFolder.get(dir) ?? [];
    for (const f of inDir) if (SMALL_FILES.test(f) && !isWeight(f)) out.add(f);
    if (dir === '' && pipelineRoot) continue;
    const units = inDir.map(weightUnit).filter((u): u is WeightUnit => u !== undefined);
    const classes = [selection.variant ? units.filter((u) => u.variant === selection.variant) : [], units.filter((u) => u.variant === null), units];
    const chosen = classes.find((c) => c.length > 0) ?? [];
    const singles = chosen.filter((u) => !u.index);
    for (const u of singles.length ? singles : chosen) out.add(u.path);
  }
  return [...out].sort();
}

/** The shard paths (repo paths) a `*.safetensors.index*.json` names in its `weight_map`. Each name
 *  is a path relative to the index's folder that stays in it (no `..` segment, not absolute, no
 *  backslash or NUL); any other is refused with a `protocol` HubError naming the index and the
 *  entry, before it names a file to download. */
export function shardsOf(indexPath: string, index: unknown): string[] {
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (!map || typeof map !== 'object') return [];
  const dir = posix.dirname(indexPath);
  const out = new Set<string>();
  for (const [k, v] of Object.entries(map as Record<string, unknown>)) {
    if (typeof v !== 'string') continue;
    const r = checkRelativePath(v);
    if ('problem' in r) throw new HubError('protocol', `${indexPath}: weight_map[${quoteValue(k)}] is ${quoteValue(v)}, not a shard file in the index's folder (${r.problem})`, { path: indexPath });
    out.add(dir === '.' ? r.path : `${dir}/${r.path}`);
  }
  return [...out].sort();
}

/** Whether a repo path is a safetensors index, whose shards must be fetched after it. */
export function isSafetensorsIndex(path: string): boolean {
  return /\.safetensors\.index(\.[^.]+)?\.json$/.test(path);
}
