// Metrics in browsers: the same model source as createMetric (diffsim/model-source.ts), given the
// model files of each role (hub downloads kept in Cache Storage, or folders the user picked).

import { Runtime, type RuntimeOptions } from '../gpu/runtime.js';
import type { LoadEventCallback } from '../io/events.js';
import type { ModelFiles } from '../io/model-files.js';
import { buildMetrics } from '../diffsim/build-metrics.js';
import { assertName, modelsOf, type Metric, type MetricName, type MetricSettingsOptions, type ModelRole } from '../diffsim/metric-api.js';
import { FilesModelSource, type ModelFilesByRole } from '../diffsim/model-source.js';

export type { ModelFilesByRole } from '../diffsim/model-source.js';

export interface CreateWebMetricOptions extends MetricSettingsOptions {
  /** The model files per role (what `modelsFor(name)` lists). A single-file SD1.5 checkpoint as
   *  `sd` needs `tokenizer` too. */
  files: ModelFilesByRole & { tokenizer?: ModelFiles };
  /** The runtime to run on; default: a new one on navigator.gpu, closed by `metric.close()`. */
  runtime?: Runtime;
  runtimeOptions?: RuntimeOptions;
  clipQkvSource?: 'pre-ln' | 'post-ln';
  /** `weights` events per checkpoint and `ready` per model, with the model's `role` (the files'
   *  own downloads report through their `onProgress`). */
  onProgress?: LoadEventCallback;
}

/** The model roles a metric needs (which ModelFiles to give). */
export function modelsFor(name: MetricName): ModelRole[] {
  return modelsOf(name);
}

/** Several metrics sharing their models, from files (hub downloads or a picked folder). */
export async function createWebMetrics(names: readonly MetricName[], o: CreateWebMetricOptions): Promise<Metric[]> {
  for (const n of names) assertName(n);
  if (!names.length) throw new RangeError('createWebMetrics: no metric named');
  const rt = o.runtime ?? (await Runtime.create(o.runtimeOptions));
  const { tokenizer, ...byRole } = o.files;
  const source = new FilesModelSource(rt, byRole, {
    ...(o.weights ? { weights: o.weights } : {}),
    ...(o.activations ? { activations: o.activations } : {}),
    ...(o.clipQkvSource ? { clipQkvSource: o.clipQkvSource } : {}),
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    ...(tokenizer ? { tokenizer: async () => tokenizer } : {}),
  });
  // On failure buildMetrics frees what it loaded, and the runtime when it is ours.
  return buildMetrics(names, { ...o, runtime: rt, ownsRuntime: !o.runtime, models: source });
}

export async function createWebMetric(name: MetricName, o: CreateWebMetricOptions): Promise<Metric> {
  return (await createWebMetrics([name], o))[0]!;
}
