// `diffsim inspect FILE [--json]`: tensor names, dtypes, shapes, parameter count and metadata.

import { openSafetensors, type TensorSource } from '../io/safetensors.js';

export interface InspectReport {
  tensors: Record<string, { dtype: string; shape: number[] }>;
  metadata: Record<string, string>;
  parameters: number;
}

export async function inspectFile(path: string): Promise<InspectReport> {
  const file: TensorSource = await openSafetensors(path);
  try {
    const tensors: InspectReport['tensors'] = {};
    let parameters = 0;
    for (const name of file.names().sort()) {
      const info = file.info(name);
      tensors[name] = { dtype: info.dtype, shape: [...info.shape] };
      parameters += info.shape.reduce((a, b) => a * b, 1);
    }
    return { tensors, metadata: { ...file.metadata }, parameters };
  } finally {
    await file.close();
  }
}

export function formatInspect(path: string, report: InspectReport): string {
  const names = Object.keys(report.tensors);
  const width = Math.min(90, Math.max(4, ...names.map((n) => n.length)));
  const lines = [`${path}: ${names.length} tensors, ${report.parameters.toLocaleString('en-US')} parameters`];
  for (const name of names) {
    const t = report.tensors[name]!;
    lines.push(`  ${name.padEnd(width)}  ${t.dtype.padEnd(4)}  [${t.shape.join(', ')}]`);
  }
  const meta = Object.entries(report.metadata);
  if (meta.length) {
    lines.push('metadata:');
    for (const [k, v] of meta) {
      const oneLine = v.replace(/\s+/g, ' ');
      lines.push(`  ${k}: ${oneLine.length > 200 ? `${oneLine.slice(0, 200)}… (${v.length} chars)` : oneLine}`);
    }
  }
  return lines.join('\n');
}
