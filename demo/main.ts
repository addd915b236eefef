// The demo page: two (or three) images, a metric, models from the hub or a picked folder, the
// score computed with WebGPU. Everything it shows is also left in `window.diffsimDemo` (tests).
import { createWebMetric, decodeImage, DEFAULT_MODELS, HubModelFiles, MODEL_SELECTIONS, modelsFor, PickedModelFiles, Runtime, type FileProgress, type Metric, type MetricLoadEvent, type MetricName, type ModelFiles, type ModelRole, type ModelSelection, type RgbImage } from '../src/browser.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const params = new URLSearchParams(location.search);

interface DemoState {
  status: 'idle' | 'planning' | 'loading' | 'loaded' | 'scoring' | 'done' | 'error';
  plan?: { files: number; totalBytes: number; downloadBytes: number };
  score?: number;
  scores?: number[];
  pick?: 'B' | 'C';
  lowerBetter?: boolean;
  settings?: Record<string, unknown>;
  loadMs?: number;
  scoreMs?: number;
  error?: string;
  progress: FileProgress[];
}
const state: DemoState = { status: 'idle', progress: [] };
(window as unknown as { diffsimDemo: DemoState }).diffsimDemo = state;

const ids: Record<'sd' | 'clip' | 'dino', HTMLInputElement> = { sd: $('model-sd'), clip: $('model-clip'), dino: $('model-dino') };
$<HTMLInputElement>('endpoint').value = params.get('endpoint') ?? 'https://huggingface.co';
ids.sd.value = params.get('sd') ?? DEFAULT_MODELS.model;
ids.clip.value = params.get('clip') ?? DEFAULT_MODELS.clipModel;
ids.dino.value = params.get('dino') ?? DEFAULT_MODELS.dinoModel;
if (params.get('metric')) $<HTMLSelectElement>('metric').value = params.get('metric')!;

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

/** Which files each role needs from a repo not in MODEL_SELECTIONS (same layouts as the defaults). */
function selectionFor(role: ModelRole, repo: string): ModelSelection {
  const sel = MODEL_SELECTIONS[repo] ?? (role === 'sd' ? { components: ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler', 'feature_extractor'] } : { components: [''] });
  // A pipeline's root holds only model_index.json, which the loaders do not read: not downloaded.
  return role === 'sd' && sel.components ? { ...sel, components: sel.components.filter((c) => c !== '') } : sel;
}

const rows = new Map<string, HTMLLIElement>();
function showProgress(p: FileProgress): void {
  state.progress.push(p);
  const key = `${p.name}/${p.file}`;
  let li = rows.get(key);
  if (!li) {
    li = document.createElement('li');
    rows.set(key, li);
    $('files').append(li);
  }
  const how = p.cached ? 'from cache' : p.status === 'done' ? 'downloaded' : 'downloading';
  li.innerHTML = '';
  const bar = document.createElement('progress');
  bar.max = 100;
  bar.value = p.progress;
  li.append(bar, ` ${key} — ${mb(p.loaded)} / ${mb(p.total)} (${how})`);
}

let folder: PickedModelFiles | null = null;
$<HTMLInputElement>('folder').addEventListener('change', (e) => {
  const files = Array.from((e.target as HTMLInputElement).files ?? []);
  folder = files.length ? new PickedModelFiles(files[0]!.webkitRelativePath.split('/')[0] || 'picked folder', files.map((f) => ({ path: f.webkitRelativePath || f.name, file: f })), showProgress) : null;
});

async function modelFiles(name: MetricName): Promise<{ files: Partial<Record<ModelRole, ModelFiles>>; hub: HubModelFiles[] }> {
  const files: Partial<Record<ModelRole, ModelFiles>> = {};
  const hub: HubModelFiles[] = [];
  for (const role of modelsFor(name)) {
    if (folder) {
      files[role] = folder;
      continue;
    }
    const repo = ids[role as 'sd' | 'clip' | 'dino'].value.trim();
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

// ---- actions ----

async function plan(): Promise<void> {
  try {
    setStatus('planning', 'listing the model files…');
    const { hub } = await modelFiles($<HTMLSelectElement>('metric').value as MetricName);
    showPlan(hub);
    setStatus('idle', '');
  } catch (e) {
    fail(e);
  }
}

/** The selected metric, its files listed, downloaded (or read from the cache) and loaded once. */
async function loadMetric(): Promise<{ metric: Metric; name: MetricName }> {
  const name = $<HTMLSelectElement>('metric').value as MetricName;
  const block = $<HTMLSelectElement>('block').value as 'up' | 'mid' | 'down';
  const key = JSON.stringify([name, block, folder?.name, Object.values(ids).map((i) => i.value), $<HTMLInputElement>('endpoint').value]);
  let metric = metrics.get(key);
  if (metric) return { metric, name };
  const t0 = performance.now();
  setStatus('planning', 'listing the model files…');
  const { files, hub } = await modelFiles(name);
  showPlan(hub);
  const rt = await gpu();
  setStatus('loading', state.plan?.downloadBytes ? `downloading ${mb(state.plan.downloadBytes)} and loading the weights…` : 'loading the weights…');
  const onProgress = (e: MetricLoadEvent) => {
    if (e.kind === 'weights') $('status').textContent = `weights of ${e.role}: ${e.progress.loaded}/${e.progress.total} tensors on the GPU`;
  };
  metric = await createWebMetric(name, { files, runtime: rt, weights: rt.features.has('shader-f16') ? 'auto' : 'f32', diffsim: { block, ...extraSettings }, onProgress });
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
    const { metric, name } = await loadMetric();
    const t1 = performance.now();
    setStatus('scoring', 'scoring…');
    const decoded = await Promise.all(images.map(readImage));
    const bytes = await Promise.all(images.map(async (f) => new Uint8Array(await f.arrayBuffer())));
    const scores: number[] = [];
    for (let i = 1; i < bytes.length; i++) scores.push(await metric.score(bytes[0]!, bytes[i]!));
    const t2 = performance.now();
    state.scoreMs = t2 - t1;
    state.scores = scores;
    state.score = scores[0];
    state.lowerBetter = metric.lowerBetter;
    state.settings = { ...metric.settings };
    const dir = metric.lowerBetter ? 'lower = more similar' : 'higher = more similar';
    let caption: string;
    if (scores.length === 2) {
      state.pick = (metric.lowerBetter ? scores[0]! <= scores[1]! : scores[0]! >= scores[1]!) ? 'B' : 'C';
      caption = `${name}: A–B ${scores[0]!.toFixed(6)}, A–C ${scores[1]!.toFixed(6)} (${dir}) → ${state.pick} is closer to A`;
    } else caption = `${name}: ${scores[0]!.toFixed(6)} (${dir})`;
    $('result').textContent = caption;
    $('settings').textContent = JSON.stringify({ ...metric.settings, loadMs: Math.round(state.loadMs ?? 0), scoreMs: Math.round(state.scoreMs) }, null, 1);
    draw(decoded, decoded.map((im, i) => `${'ABC'[i]}: ${images[i]!.name} ${im.width}×${im.height}`), caption);
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
