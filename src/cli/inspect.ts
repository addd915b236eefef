// `diffsim inspect FILE [--json]`: tensor names, dtypes, shapes, parameter count and metadata.

import { openSafetensors, setOwn, type TensorSource } from '../io/safetensors.js';

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
      // Own properties, so that names such as "__proto__" are listed like any other.
      setOwn(tensors, name, { dtype: info.dtype, shape: [...info.shape] });
      let n = 1;
      for (const d of info.shape) n *= d;
      parameters += n;
    }
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(file.metadata)) setOwn(metadata, k, v);
    return { tensors, metadata, parameters };
  } finally {
    await file.close();
  }
}

/** Characters a terminal may act on or that hide or reorder text: C0 controls, DEL, C1 controls,
 *  bidirectional overrides and isolates, zero-width and other invisible format characters. */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;

/** Untrusted text made safe to print: unsafe characters as \n, \t, \r, \xHH or \u{HHHH}. */
export function escapeControls(s: string): string {
  return s.replace(UNSAFE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    const code = c.charCodeAt(0);
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

export function formatInspect(path: string, report: InspectReport): string {
  const names = Object.keys(report.tensors);
  const shown = names.map(escapeControls);
  let width = 4;
  for (const n of shown) if (n.length > width) width = n.length;
  width = Math.min(90, width);
  const lines = [`${escapeControls(path)}: ${names.length} tensors, ${report.parameters.toLocaleString('en-US')} parameters`];
  for (let i = 0; i < names.length; i++) {
    const t = report.tensors[names[i]!]!;
    lines.push(`  ${shown[i]!.padEnd(width)}  ${escapeControls(t.dtype).padEnd(4)}  [${t.shape.join(', ')}]`);
  }
  const meta = Object.entries(report.metadata);
  if (meta.length) {
    lines.push('metadata:');
    for (const [k, v] of meta) {
      const oneLine = v.replace(/[ \t\n\r\f\v]+/g, ' ');
      lines.push(`  ${escapeControls(k)}: ${escapeControls(oneLine.length > 200 ? `${oneLine.slice(0, 200)}… (${v.length} chars)` : oneLine)}`);
    }
  }
  return lines.join('\n');
}
