// The demo page: two (or three) images, a metric, models from the hub or a picked folder, the
// score computed with WebGPU, and for the AAS metrics the agreement map of A against B. Before any
// weight is downloaded the page checks that the metric's largest GPU buffer fits the adapter.
// Everything it shows is also left in `window.diffsimDemo` (tests).
//
// URL parameters: endpoint, sd, ipAdapter, clip, dino (model repos), revision, metric, preset (the
// official settings of a benchmark, e.g. nights), block,
// diffsim={"…": …} (further DiffSim settings), and, as a testing aid, bufferLimit=BYTES, which
// lowers both adapter limits the pre-download check compares with (never the device's own limits).
import {
  AdapterLimitError,
  AGREEMENT_METRICS,
  agreementFromEmbeddings,
  agreementPixels,
  checkAdapterLimits,
  createWebMetric,
  decodeImage,
  DEFAULT_MODELS,
  DIFFSIM_DEFAULTS,
  DIFFSIM_PRESETS,
  DIFFSIM_PRESET_NAMES,
  formatBytes,
  HubModelFiles,
  MODEL_SELECTIONS,
  modelsFor,
  PickedModelFiles,
  Runtime,
  type AgreementMap,
  type DiffSimSettingsInput,
  type BufferLimits,
  type Metric,
  type LoadEvent,
  type MetricName,
  type ModelFiles,
  type ModelRole,
  type ModelSelection,
  type RgbImage,
  type WeightPrecision,
  vote,
  type Candidate,
} from '../src/browser.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

interface DemoState {
  status: 'idle' | 'planning' | 'checking' | 'loading' | 'loaded' | 'scoring' | 'done' | 'error';
  plan?: { files: number; totalBytes: number; downloadBytes: number };
  /** The pre-download check: the limits compared with, the largest buffer, or what did not fit. */
  limits?: {
    maxBufferSize: number;
    maxStorageBufferBindingSize: number;
    /** The weight precision the models load with (f16 linear/conv weights where the adapter has shader-f16). */
    weights: WeightPrecision;
    largest?: { kind: string; tensor: string; shape: number[]; bytes: number };
    over?: { kind: string; tensor: string; shape: number[]; bytes: number; limit: string; value: number };
  };
  /** The agreement map of A against B (AAS metrics), or why there is none. */
  map?: { mean: number; min: number; max: number; grid: number[]; gridWidth: number; gridHeight: number; module: string; halves: number };
  mapNote?: string;
  mapMs?: number;
  score?: number;
  scores?: number[];
  /** With three images: the candidate closer to A, 1 (B) or 2 (C), as `diffsim pick A B C` prints it. */
  pick?: Candidate;
  lowerBetter?: boolean;
  settings?: Record<string, unknown>;
  loadMs?: number;
  scoreMs?: number;
  error?: string;
  /** The files' load events (initiate, download, progress, done). */
  progress: LoadEvent[];
}
const state: DemoState = { status: 'idle', progress: [] };
(window as unknown as { diffsimDemo: DemoState }).diffsimDemo = state;

// diffsim-xl (role sdxl) takes its repo from the SD field.
const ids: Record<'sd' | 'ipAdapter' | 'clip' | 'dino', HTMLInputElement> = { sd: $('model-sd'), ipAdapter: $('model-ipAdapter'), clip: $('model-clip'), dino: $('model-dino') };
$<HTMLInputElement>('endpoint').value = params.get('endpoint') ?? 'https://huggingface.co';
ids.sd.value = params.get('sd') ?? DEFAULT_MODELS.model;
ids.ipAdapter.value = params.get('ipAdapter') ?? DEFAULT_MODELS.ipAdapter;
ids.clip.value = params.get('clip') ?? DEFAULT_MODELS.clipModel;
ids.dino.value = params.get('dino') ?? DEFAULT_MODELS.dinoModel;
if (params.get('metric')) $<HTMLSelectElement>('metric').value = params.get('metric')!;
// The presets and the defaults come from the library's settings module.
for (const name of DIFFSIM_PRESET_NAMES) {
  const o = document.createElement('option');
  o.value = name;
  o.textContent = `${name} (${Object.entries(DIFFSIM_PRESETS[name]).map(([k, v]) => `${k} ${String(v)}`).join(', ')})`;
  $<HTMLSelectElement>('preset').append(o);
}
const presetParam = params.get('preset');
if (presetParam && !(DIFFSIM_PRESET_NAMES as readonly string[]).includes(presetParam)) throw new Error(`?preset=${presetParam}: unknown preset (known: ${DIFFSIM_PRESET_NAMES.join(', ')})`);
$<HTMLSelectElement>('preset').value = presetParam ?? '';
$<HTMLSelectElement>('block').value = params.get('block') ?? DIFFSIM_DEFAULTS.block;

/** The testing aid ?bufferLimit=BYTES: a cap on the limits the pre-download check uses. */
const bufferLimit = ((): number | undefined => {
  const raw = params.get('bufferLimit');
  if (raw === null) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`?bufferLimit=${raw}: expected a positive whole number of bytes`);
  return n;
})();

/** Further DiffSim settings from the URL, e.g. ?diffsim={"roundToF16":false} (shown in the settings used). */
const extraSettings = ((): Record<string, unknown> => {
  const raw = params.get('diffsim');
  if (!raw) return {};
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`?diffsim=${raw}: not JSON (${(e as Error).message})`);
  }
})();

let images: File[] = [];
function setImages(list: FileList | File[]): void {
  images = Array.from(list).slice(0, 3);
  $('chosen').textContent = images.length ? images.map((f, i) => `${'ABC'[i]}: ${f.name} (${f.size} bytes)`).join(' · ') : '';
}
$<HTMLInputElement>('images').addEventListener('change', (e) => setImages((e.target as HTMLInputElement).files ?? []));
const drop = $('drop');
drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer?.files.length) setImages(e.dataTransfer.files);
});

const mb = (n: number) => (n < 1e6 ? `${(n / 1e3).toFixed(1)} kB` : `${(n / 1e6).toFixed(n < 1e7 ? 2 : 0)} MB`);

function setStatus(s: DemoState['status'], text: string): void {
  state.status = s;
  $('status').textContent = text;
}

// ---- models ----

/** Which files each role needs from a repo not in MODEL_SELECTIONS (same layouts as the defaults;
 *  an IP-Adapter repo either as h94/IP-Adapter, under models/, or with the files at its root). */
function selectionFor(role: ModelRole, repo: string): ModelSelection {
  const fallback: ModelSelection =
    role === 'sd'
      ? { components: ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler', 'feature_extractor'] }
      : role === 'ipAdapter'
        ? { include: ['models/ip-adapter-plus_sd15.safetensors', 'ip-adapter-plus_sd15.safetensors'], components: ['models/image_encoder', 'image_encoder'] }
        : { components: [''] };
  const sel = MODEL_SELECTIONS[repo] ?? fallback;
  // A pipeline's root holds only model_index.json, which the loaders do not read: not downloaded.
  return role === 'sd' && sel.components ? { ...sel, components: sel.components.filter((c) => c !== '') } : sel;
}

const rows = new Map<string, { li: HTMLLIElement; loaded: number; total: number }>();
function showProgress(e: LoadEvent): void {
  if (e.status !== 'initiate' && e.status !== 'download' && e.status !== 'progress' && e.status !== 'done') return;
  state.progress.push(e);
  const key = `${e.name}/${e.file}`;
  let row = rows.get(key);
  if (!row) {
    row = { li: document.createElement('li'), loaded: 0, total: 0 };
    rows.set(key, row);
    $('files').append(row.li);
  }
  if (e.status === 'progress') [row.loaded, row.total] = [e.loaded, e.total];
  if (e.status === 'done' && e.total !== undefined) [row.loaded, row.total] = [e.total, e.total];
  const how = e.status === 'done' ? (e.cached ? 'from cache' : 'downloaded') : e.status === 'initiate' ? 'looking in the cache' : 'downloading';
  row.li.innerHTML = '';
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.value = e.status === 'done' ? 100 : row.total ? (100 * row.loaded) / row.total : 0;
  row.li.append(bar, ` ${key} — ${mb(row.loaded)} / ${mb(row.total)} (${how})`);
}

/** A picked folder's files (`<input webkitdirectory>`). */
function pickedFolder(input: HTMLInputElement): PickedModelFiles | null {
  const files = Array.from(input.files ?? []);
  return files.length ? new PickedModelFiles(files[0]!.webkitRelativePath.split('/')[0] || 'picked folder', files.map((f) => ({ path: f.webkitRelativePath || f.name, file: f })), showProgress) : null;
}
/** The picked folder of the metric's main model (SD1.5, CLIP or DINOv2), and of the IP-Adapter. */
let folder: PickedModelFiles | null = null;
let folderIp: PickedModelFiles | null = null;
$<HTMLInputElement>('folder').addEventListener('change', (e) => (folder = pickedFolder(e.target as HTMLInputElement)));
$<HTMLInputElement>('folder-ip').addEventListener('change', (e) => (folderIp = pickedFolder(e.target as HTMLInputElement)));

async function modelFiles(name: MetricName): Promise<{ files: Partial<Record<ModelRole, ModelFiles>>; hub: HubModelFiles[] }> {
  const files: Partial<Record<ModelRole, ModelFiles>> = {};
  const hub: HubModelFiles[] = [];
  for (const role of modelsFor(name)) {
    const picked = role === 'ipAdapter' ? folderIp : folder;
    if (picked) {
      files[role] = picked;
      continue;
    }
    if (role === 'dit') throw new Error('diffsim-dit is not offered in the browser demo');
    // The demo page has hub-id fields for the DiffSim, CLIP and DINOv2 models only; the LPIPS and
    // Gram baselines need a picked folder here.
    if (role !== 'sd' && role !== 'sdxl' && role !== 'ipAdapter' && role !== 'clip' && role !== 'dino') throw new Error(`${name}: pick a folder holding its model files (this page has no hub-id field for the ${role} model)`);
    const repo = ids[role === 'sdxl' ? 'sd' : role].value.trim();
    const h = await HubModelFiles.open(repo, selectionFor(role, repo), { endpoint: $<HTMLInputElement>('endpoint').value.trim(), onProgress: showProgress, ...(params.get('revision') ? { revision: params.get('revision')! } : {}) });
    files[role] = h;
    hub.push(h);
  }
  return { files, hub };
}

function showPlan(hub: HubModelFiles[]): void {
  const total = hub.reduce((a, h) => a + h.totalBytes, 0);
  const dl = hub.reduce((a, h) => a + h.downloadBytes, 0);
  const n = hub.reduce((a, h) => a + h.files.length, 0);
  state.plan = { files: n, totalBytes: total, downloadBytes: dl };
  $('plan-info').textContent = hub.length
    ? `${n} files, ${mb(total)} in all: ${dl ? `${mb(dl)} to download` : 'everything is in the browser cache'} (${hub.map((h) => `${h.name}@${h.commit.slice(0, 10)}`).join(', ')})`
    : 'models from the picked folder: nothing to download';
}

/** The limits the pre-download check compares with: the adapter's, lowered by ?bufferLimit. */
function checkedLimits(rt: Runtime): BufferLimits {
  const cap = (v: number | undefined, fallback: number) => Math.min(v ?? fallback, bufferLimit ?? Infinity);
  return { maxBufferSize: cap(rt.limits.maxBufferSize, 268435456), maxStorageBufferBindingSize: cap(rt.limits.maxStorageBufferBindingSize, 134217728) };
}

/** The sizes of the chosen images (the ViT processors' crop can depend on them). */
async function imageSizes(): Promise<{ width: number; height: number }[] | undefined> {
  if (!images.length) return undefined;
  return (await Promise.all(images.map(readImage))).map((im) => ({ width: im.width, height: im.height }));
}

/** Refuses, before any weight is downloaded, a metric whose largest GPU buffer (a weight tensor or
 *  an activation at the image size it runs at) does not fit the adapter: the configs and the
 *  safetensors headers are read, nothing else. */
async function checkLimits(name: MetricName, files: Partial<Record<ModelRole, ModelFiles>>, rt: Runtime): Promise<void> {
  const limits = checkedLimits(rt);
  const weights = weightsFor(rt);
  const report: NonNullable<DemoState['limits']> = { ...limits, weights };
  state.limits = report;
  const lowered = bufferLimit !== undefined ? ` (lowered to ${formatBytes(bufferLimit)} by ?bufferLimit, a testing aid)` : '';
  setStatus('checking', 'reading the model configs and weight headers…');
  try {
    const sizes = await imageSizes();
    const { largest } = await checkAdapterLimits(name, files, limits, { weights, diffsim: diffsimSettings(), ...(sizes ? { images: sizes } : {}) });
    report.largest = { kind: largest.kind, tensor: largest.tensor, shape: largest.shape, bytes: largest.bytes };
    $('limits').textContent = `largest GPU buffer: ${largest.kind} "${largest.tensor}" [${largest.shape.join(', ')}], ${formatBytes(largest.bytes)}; this adapter allows ${formatBytes(limits.maxStorageBufferBindingSize)} per binding and ${formatBytes(limits.maxBufferSize)} per buffer${lowered}`;
  } catch (e) {
    if (e instanceof AdapterLimitError) {
      const v = e.violations[0]!;
      report.over = { kind: v.need.kind, tensor: v.need.tensor, shape: v.need.shape, bytes: v.need.bytes, limit: v.limit, value: v.value };
      $('limits').textContent = `checked against ${v.limit} ${formatBytes(v.value)}${lowered}: nothing was downloaded`;
    }
    throw e;
  }
}

/** f16 linear/conv weights where the checkpoint stores F16 and the adapter has shader-f16. */
function weightsFor(rt: Runtime): WeightPrecision {
  return rt.features.has('shader-f16') ? 'auto' : 'f32';
}

/** The page's DiffSim settings: the preset chosen (if any), the block, then ?diffsim={…}. */
function diffsimSettings(): DiffSimSettingsInput {
  const preset = $<HTMLSelectElement>('preset').value;
  return { ...(preset ? { preset: preset as DiffSimSettingsInput['preset'] } : {}), block: $<HTMLSelectElement>('block').value as 'up' | 'mid' | 'down', ...extraSettings };
}

// ---- GPU ----

let runtime: Runtime | null = null;
async function gpu(): Promise<Runtime> {
  if (runtime) return runtime;
  if (!('gpu' in navigator)) throw new Error('this browser has no WebGPU (navigator.gpu): use a recent Chrome, Edge or Safari, or Firefox with WebGPU enabled');
  runtime = await Runtime.create();
  const l = runtime.limits;
  $('adapter').textContent = JSON.stringify({ adapter: runtime.adapterInfo, features: [...runtime.features], maxBufferSize: l.maxBufferSize, maxStorageBufferBindingSize: l.maxStorageBufferBindingSize }, null, 1);
  return runtime;
}

const metrics = new Map<string, Metric>();

async function readImage(f: File): Promise<RgbImage> {
  return decodeImage(new Uint8Array(await f.arrayBuffer()), f.name);
}

// ---- drawing (a 2D canvas: WebGPU canvases do not show in headless screenshots) ----

function draw(imgs: RgbImage[], labels: string[], caption: string): void {
  const c = $<HTMLCanvasElement>('view');
  const g = c.getContext('2d')!;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, c.width, c.height);
  const box = 200;
  imgs.forEach((im, i) => {
    const data = new ImageData(im.width, im.height);
    for (let p = 0; p < im.width * im.height; p++) {
      data.data[4 * p] = im.data[3 * p]!;
      data.data[4 * p + 1] = im.data[3 * p + 1]!;
      data.data[4 * p + 2] = im.data[3 * p + 2]!;
      data.data[4 * p + 3] = 255;
    }
    const tmp = document.createElement('canvas');
    tmp.width = im.width;
    tmp.height = im.height;
    tmp.getContext('2d')!.putImageData(data, 0, 0);
    const s = Math.min(box / im.width, box / im.height);
    const x = 10 + i * (box + 12);
    g.imageSmoothingEnabled = true;
    g.drawImage(tmp, x, 10, im.width * s, im.height * s);
    g.fillStyle = '#1d2230';
    g.font = '14px system-ui, sans-serif';
    g.fillText(labels[i]!, x, box + 30);
  });
  g.font = 'bold 16px system-ui, sans-serif';
  g.fillText(caption, 10, box + 54);
}

/** The agreement map: agreementPixels' picture (the one `diffsim map` writes as a PNG) magnified
 *  by a whole factor without smoothing, the colour bar's tick values beside it, the numbers below. */
function showMap(name: MetricName, map: AgreementMap | undefined, a: RgbImage, b: RgbImage): void {
  const c = $<HTMLCanvasElement>('map');
  if (!map) {
    c.width = 0;
    c.height = 0;
    state.mapNote = `${name} has no attention map: the agreement map needs one of the attention metrics (${AGREEMENT_METRICS.join(', ')}).`;
    $('map-note').textContent = state.mapNote;
    return;
  }
  state.map = { mean: map.mean, min: map.min, max: map.max, grid: Array.from(map.grid), gridWidth: map.gridWidth, gridHeight: map.gridHeight, module: map.module, halves: map.halves };
  const pic = agreementPixels(map, a, b);
  const k = Math.max(1, Math.min(4, Math.floor(256 / pic.height)));
  const lines = [
    { font: '14px system-ui, sans-serif', text: `mean ${map.mean.toFixed(6)} · min ${map.min.toFixed(6)} · max ${map.max.toFixed(6)}` },
    { font: '12px system-ui, sans-serif', text: `${name} ${map.module}: ${map.gridWidth}×${map.gridHeight} tokens, ${map.halves} batch element${map.halves > 1 ? 's' : ''} averaged` },
    { font: '12px system-ui, sans-serif', text: 'colours from the map’s min (bottom of the bar) to its max (top)' },
  ];
  const measure = document.createElement('canvas').getContext('2d')!;
  const textWidth = Math.max(
    ...lines.map((l) => {
      measure.font = l.font;
      return Math.ceil(measure.measureText(l.text).width);
    }),
  );
  const labels = 64;
  c.width = Math.max(pic.width * k + labels, textWidth + 4);
  c.height = pic.height * k + 18 * lines.length + 10;
  c.dataset.scale = String(k);
  const g = c.getContext('2d')!;
  g.fillStyle = '#fff';
  g.fillRect(0, 0, c.width, c.height);
  const tmp = document.createElement('canvas');
  tmp.width = pic.width;
  tmp.height = pic.height;
  tmp.getContext('2d')!.putImageData(new ImageData(pic.data, pic.width, pic.height), 0, 0);
  g.imageSmoothingEnabled = false;
  g.drawImage(tmp, 0, 0, pic.width * k, pic.height * k);
  g.fillStyle = '#1d2230';
  g.font = '12px ui-monospace, monospace';
  g.textBaseline = 'middle';
  // The tick values beside the bar's ticks (kept inside the picture's height).
  for (const t of pic.ticks) g.fillText(t.value.toFixed(4), pic.width * k + 4, Math.min(Math.max(t.y * k + k / 2, 7), pic.height * k - 7));
  g.textBaseline = 'alphabetic';
  lines.forEach((l, i) => {
    g.font = l.font;
    g.fillText(l.text, 0, pic.height * k + 20 + 18 * i);
  });
  $('map-note').textContent = `A (${a.width}×${a.height}) with the map, B beside it, magnified ${k}×.`;
}

// ---- actions ----

async function plan(): Promise<void> {
  try {
    setStatus('planning', 'listing the model files…');
    const name = $<HTMLSelectElement>('metric').value as MetricName;
    const { files, hub } = await modelFiles(name);
    showPlan(hub);
    await checkLimits(name, files, await gpu());
    setStatus('idle', '');
  } catch (e) {
    fail(e);
  }
}

/** The selected metric, its files listed, downloaded (or read from the cache) and loaded once. */
async function loadMetric(): Promise<{ metric: Metric; name: MetricName }> {
  const name = $<HTMLSelectElement>('metric').value as MetricName;
  const key = JSON.stringify([name, diffsimSettings(), folder?.name, folderIp?.name, Object.values(ids).map((i) => i.value), $<HTMLInputElement>('endpoint').value]);
  let metric = metrics.get(key);
  if (metric) return { metric, name };
  const t0 = performance.now();
  setStatus('planning', 'listing the model files…');
  const { files, hub } = await modelFiles(name);
  showPlan(hub);
  const rt = await gpu();
  await checkLimits(name, files, rt);
  setStatus('loading', state.plan?.downloadBytes ? `downloading ${mb(state.plan.downloadBytes)} and loading the weights…` : 'loading the weights…');
  const onProgress = (e: LoadEvent) => {
    if (e.status === 'weights') $('status').textContent = `weights of ${e.role}: ${e.file} ${e.loaded}/${e.total} tensors on the GPU`;
  };
  metric = await createWebMetric(name, { files, runtime: rt, weights: weightsFor(rt), diffsim: diffsimSettings(), onProgress });
  metrics.set(key, metric);
  state.loadMs = performance.now() - t0;
  state.settings = { ...metric.settings };
  $('settings').textContent = JSON.stringify(metric.settings, null, 1);
  return { metric, name };
}

async function load(): Promise<void> {
  $('error').textContent = '';
  state.error = undefined;
  try {
    await loadMetric();
    setStatus('loaded', `loaded in ${(state.loadMs! / 1000).toFixed(2)} s`);
  } catch (e) {
    fail(e);
  }
}

async function score(): Promise<void> {
  $('error').textContent = '';
  state.error = undefined;
  try {
    if (images.length < 2) throw new Error('choose two images (or three to pick)');
    state.map = undefined;
    state.mapNote = undefined;
    const { metric, name } = await loadMetric();
    const t1 = performance.now();
    setStatus('scoring', 'scoring…');
    const decoded = await Promise.all(images.map(readImage));
    // A embedded once (role A), each candidate in role B: score(a, b) = compare(embed(a, 'A'),
    // embed(b, 'B')); the map of A against B comes from the same two embeddings.
    const scores: number[] = [];
    const ea = await metric.embed(decoded[0]!, 'A');
    let eb1: Awaited<ReturnType<Metric['embed']>> | undefined;
    let map: AgreementMap | undefined;
    let t2: number;
    try {
      for (let i = 1; i < decoded.length; i++) {
        const eb = await metric.embed(decoded[i]!, 'B');
        try {
          scores.push(await metric.compare(ea, eb));
        } finally {
          if (i === 1) eb1 = eb;
          else eb.dispose();
        }
      }
      t2 = performance.now();
      if ((AGREEMENT_METRICS as readonly string[]).includes(name)) map = await agreementFromEmbeddings(metric, ea, eb1!, decoded[0]!);
    } finally {
      eb1?.dispose();
      ea.dispose();
    }
    state.mapMs = performance.now() - t2;
    state.scoreMs = t2 - t1;
    state.scores = scores;
    state.score = scores[0];
    state.lowerBetter = metric.lowerBetter;
    state.settings = { ...metric.settings };
    const dir = metric.lowerBetter ? 'lower = more similar' : 'higher = more similar';
    let caption: string;
    if (scores.length === 2) {
      // The command's rule: 1 only if B is strictly closer (a tie goes to 2).
      state.pick = vote(scores[0]!, scores[1]!, !metric.lowerBetter, 'second');
      caption = `${name}: A–B ${scores[0]!.toFixed(6)}, A–C ${scores[1]!.toFixed(6)} (${dir}) → ${state.pick} (${state.pick === 1 ? 'B' : 'C'}) is closer to A`;
    } else caption = `${name}: ${scores[0]!.toFixed(6)} (${dir})`;
    $('result').textContent = caption;
    $('settings').textContent = JSON.stringify({ ...metric.settings, loadMs: Math.round(state.loadMs ?? 0), scoreMs: Math.round(state.scoreMs) }, null, 1);
    draw(decoded, decoded.map((im, i) => `${'ABC'[i]}: ${images[i]!.name} ${im.width}×${im.height}`), caption);
    showMap(name, map, decoded[0]!, decoded[1]!);
    setStatus('done', `loaded in ${((state.loadMs ?? 0) / 1000).toFixed(2)} s, scored in ${(state.scoreMs / 1000).toFixed(2)} s`);
  } catch (e) {
    fail(e);
  }
}

function fail(e: unknown): void {
  const msg = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  state.error = msg;
  $('error').textContent = msg;
  setStatus('error', 'failed');
  console.error(e);
}

$('plan').addEventListener('click', () => void plan());
$('load').addEventListener('click', () => void load());
$('score').addEventListener('click', () => void score());
