// --json output: one line holding one JSON object on stdout (so `| jq`, `| tail -n1` and line-based
// tools read it whole), or with --pretty the same object indented over several lines.

/** Characters JSON.stringify leaves raw that a terminal may act on or that hide or reorder text:
 *  DEL, C1 controls, bidirectional overrides and isolates, zero-width and format characters. */
const UNSAFE_IN_JSON = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;

/** JSON text whose strings keep their exact values, with the characters JSON.stringify leaves raw
 *  written as \uXXXX escapes, so a terminal shows them inert. One line unless `pretty` (indented
 *  by two spaces). */
export function terminalJson(value: unknown, pretty = false): string {
  return JSON.stringify(value, null, pretty ? 2 : undefined).replace(UNSAFE_IN_JSON, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Prints `value` as --json asks: one line, or indented with --pretty. */
export function printJson(value: unknown, pretty: boolean): void {
  console.log(terminalJson(value, pretty));
}

/** The usage line of --pretty, shared by every command with --json. */
export const PRETTY_USAGE = '    --pretty               with --json: the object indented over several lines';
