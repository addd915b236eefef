// Readers that see a file the way the benchmark scripts' Python does:
//  * readCsvDicts: `csv.DictReader(open(path))` with the default (excel) dialect, including the
//    universal-newline translation of the text-mode open.
//  * parseJsonOrdered: `json.load`, with objects as Maps in document order. JSON.parse is not
//    enough: JS objects list integer-like keys ("12") first, ascending, whatever the document order,
//    and DreamBench pairs its rating keys in dict (document) order.

/** Decodes UTF-8 strictly, keeping a leading BOM as U+FEFF (as Python's utf-8 codec does). */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw new Error(`${file}: not valid UTF-8 text`);
  }
}

/** One csv record: its fields and the 1-based line it starts on. */
export interface CsvRecord {
  fields: string[];
  line: number;
}

/** The records of a csv text (excel dialect: ',' delimiter, '"' quotes with "" inside, no
 *  skipinitialspace, not strict). A blank line is a record with no fields. '\r\n' and lone '\r'
 *  count as '\n' (universal newlines), also inside quoted fields. A quote in the middle of an
 *  unquoted field is literal; characters after a closing quote are appended to the field. */
export function parseCsv(text: string): CsvRecord[] {
  const s = text.replace(/\r\n?/g, '\n');
  const out: CsvRecord[] = [];
  type State = 'record' | 'field' | 'unquoted' | 'quoted' | 'quoteInQuoted';
  let state: State = 'record';
  let fields: string[] = [];
  let field = '';
  let line = 1;
  let start = 1;
  const save = () => {
    fields.push(field);
    field = '';
  };
  const end = () => {
    out.push({ fields, line: start });
    fields = [];
    state = 'record';
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (state === 'record') {
      start = line;
      if (c === '\n') {
        line++;
        end();
        continue;
      }
      state = 'field';
    }
    switch (state) {
      case 'field':
        if (c === '\n') {
          save();
          end();
        } else if (c === '"') state = 'quoted';
        else if (c === ',') save();
        else {
          field += c;
          state = 'unquoted';
        }
        break;
      case 'unquoted':
        if (c === '\n') {
          save();
          end();
        } else if (c === ',') {
          save();
          state = 'field';
        } else field += c;
        break;
      case 'quoted':
        if (c === '"') state = 'quoteInQuoted';
        else field += c;
        break;
      case 'quoteInQuoted':
        if (c === '"') {
          field += '"';
          state = 'quoted';
        } else if (c === ',') {
          save();
          state = 'field';
        } else if (c === '\n') {
          save();
          end();
        } else {
          field += c;
          state = 'unquoted';
        }
        break;
    }
    if (c === '\n') line++;
  }
  if (state !== 'record') {
    // end of text without a final newline (or inside a quoted field: non-strict csv keeps it)
    save();
    end();
  }
  return out;
}

/** A csv.DictReader row: field name → value; a short row leaves the later names unset (None in
 *  Python), a long row's extra values are dropped (they go under the key None there). */
export interface CsvRow {
  values: Map<string, string>;
  line: number;
}

/** `csv.DictReader`: the first record names the fields, blank records are skipped, a repeated
 *  field name takes the later column's value. */
export function readCsvDicts(text: string): { fieldnames: string[]; rows: CsvRow[] } {
  const records = parseCsv(text);
  let i = 0;
  const fieldnames = i < records.length ? records[i++]!.fields : [];
  const rows: CsvRow[] = [];
  for (; i < records.length; i++) {
    const r = records[i]!;
    if (r.fields.length === 0) continue;
    const values = new Map<string, string>();
    const n = Math.min(fieldnames.length, r.fields.length);
    for (let j = 0; j < n; j++) values.set(fieldnames[j]!, r.fields[j]!);
    rows.push({ values, line: r.line });
  }
  return { fieldnames, rows };
}

/** A JSON value as json.load sees it: objects become Maps in document order (a repeated key keeps
 *  its first position and its last value, like a dict); NaN, Infinity and -Infinity are accepted. */
export type JsonValue = null | boolean | number | string | JsonValue[] | Map<string, JsonValue>;

const STRING = /"(?:[^"\\\u0000-\u001f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"/y;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

export function parseJsonOrdered(text: string, file: string): JsonValue {
  let i = 0;
  const fail = (what: string): never => {
    const before = text.slice(0, i);
    const line = before.split('\n').length;
    const col = i - before.lastIndexOf('\n');
    throw new Error(`${file}: invalid JSON at line ${line} column ${col}: ${what}`);
  };
  const ws = () => {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t' || text[i] === '\n' || text[i] === '\r')) i++;
  };
  const str = (): string => {
    STRING.lastIndex = i;
    const m = STRING.exec(text);
    if (!m) return fail('expected a string');
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const value = (): JsonValue => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const obj = new Map<string, JsonValue>();
      ws();
      if (text[i] === '}') {
        i++;
        return obj;
      }
      for (;;) {
        ws();
        const k = str();
        ws();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        obj.set(k, value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === '}') {
          i++;
          return obj;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      i++;
      const arr: JsonValue[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return arr;
      }
      for (;;) {
        arr.push(value());
        ws();
        if (text[i] === ',') i++;
        else if (text[i] === ']') {
          i++;
          return arr;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return str();
    for (const [word, v] of [['true', true], ['false', false], ['null', null], ['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    NUMBER.lastIndex = i;
    const m = NUMBER.exec(text);
    if (!m) return fail('expected a value');
    i += m[0].length;
    return Number(m[0]);
  };
  const v = value();
  ws();
  if (i < text.length) fail('extra data after the value');
  return v;
}
