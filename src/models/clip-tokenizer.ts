// CLIP BPE tokenizer giving the ids of Hugging Face's (slow) CLIPTokenizer as transformers 4.44 runs
// it without ftfy: BERT-style text cleanup (control characters dropped, Unicode whitespace → space,
// spaces around CJK ideographs, NFC, lowercasing, accents kept), CLIP's split pattern, byte-level
// BPE with `</w>` word ends, then <|startoftext|> … <|endoftext|>, truncated and padded to 77.

import { localModelFiles } from '../io/local-files.js';
import { hasFile, joinRel, optionalJson, readJson, readText, type ModelFiles } from '../io/model-files.js';

export interface ClipTokenizerFiles {
  /** vocab.json contents: token → id. */
  vocab: Record<string, number>;
  /** merges.txt contents. */
  merges: string;
  /** tokenizer_config.json contents (optional: special tokens, model_max_length). */
  config?: Record<string, unknown>;
  /** special_tokens_map.json contents (optional). */
  specialTokens?: Record<string, unknown>;
}

/** GPT-2's reversible byte → printable character map. */
function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const table = new Array<string>(256);
  bs.forEach((b, i) => (table[b] = String.fromCodePoint(cs[i]!)));
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const CLIP_PATTERN = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

function isCjk(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** Python's unicodedata view used by BERT's BasicTokenizer. */
const CONTROL = /^\p{C}$/u;
const SPACE_SEPARATOR = /^\p{Zs}$/u;

/** BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize, joined by spaces. */
export function basicClean(text: string): string {
  let cleaned = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd) continue;
    if (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || SPACE_SEPARATOR.test(ch)) {
      cleaned += ' ';
      continue;
    }
    if (CONTROL.test(ch)) continue;
    cleaned += isCjk(cp) ? ` ${ch} ` : ch;
  }
  const words = cleaned.normalize('NFC').split(/\s+/u).filter((w) => w.length > 0);
  return words.map((w) => w.toLowerCase()).join(' ');
}

export class ClipTokenizer {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, string[]>();
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly maxLength: number;
  private readonly bosToken: string;
  private readonly eosToken: string;
  /** Tokens matched whole before BPE (the reference's added-token split): bos, eos and the
   *  tokenizer_config's added_tokens_decoder, e.g. SDXL tokenizer_2's pad token "!" (id 0). */
  private readonly addedTokens: Set<string>;
  private readonly addedPattern: RegExp;

  constructor(private readonly files: ClipTokenizerFiles) {
    const lines = files.merges.split('\n');
    let rank = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.replace(/\r$/, '');
      if ((i === 0 && line.startsWith('#version')) || line.trim() === '') continue;
      const parts = line.split(' ');
      if (parts.length !== 2) throw new Error(`merges.txt line ${i + 1}: expected two symbols, got "${line}"`);
      this.ranks.set(`${parts[0]} ${parts[1]}`, rank++);
    }
    const cfg = files.config ?? {};
    const special = files.specialTokens ?? {};
    const tokenName = (key: string, fallback: string): string => {
      const v = (cfg[key] ?? special[key]) as unknown;
      if (typeof v === 'string') return v;
      if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
      return fallback;
    };
    this.bosToken = tokenName('bos_token', '<|startoftext|>');
    this.eosToken = tokenName('eos_token', '<|endoftext|>');
    const idOf = (token: string, what: string): number => {
      const id = files.vocab[token];
      if (id === undefined) throw new Error(`tokenizer: ${what} "${token}" is not in vocab.json`);
      return id;
    };
    this.bosId = idOf(this.bosToken, 'bos_token');
    this.eosId = idOf(this.eosToken, 'eos_token');
    this.padId = idOf(tokenName('pad_token', this.eosToken), 'pad_token');
    this.unkId = idOf(tokenName('unk_token', this.eosToken), 'unk_token');
    this.addedTokens = new Set([this.bosToken, this.eosToken]);
    const decoder = cfg.added_tokens_decoder;
    if (decoder && typeof decoder === 'object') {
      for (const v of Object.values(decoder as Record<string, unknown>)) {
        const content = (v as { content?: unknown } | null)?.content;
        if (typeof content === 'string' && content.length && files.vocab[content] !== undefined) this.addedTokens.add(content);
      }
    }
    const escaped = [...this.addedTokens].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
    this.addedPattern = new RegExp(`(${escaped.join('|')})`);
    const max = cfg.model_max_length;
    this.maxLength = typeof max === 'number' && max > 0 && max < 1e6 ? max : 77;
  }

  /** A tokenizer folder's files (vocab.json, merges.txt and, if present, tokenizer_config.json and
   *  special_tokens_map.json) from a model's files: at their root, or in `tokenizer/` of a pipeline. */
  static async fromFiles(files: ModelFiles): Promise<ClipTokenizer> {
    const dir = hasFile(files, 'vocab.json') || !hasFile(files, 'tokenizer/vocab.json') ? '' : 'tokenizer';
    const at = (name: string) => joinRel(dir, name);
    const vocab = await readJson<Record<string, number>>(files, at('vocab.json'), 'tokenizer vocabulary');
    const merges = await readText(files, at('merges.txt'), 'tokenizer merges');
    const config = await optionalJson<Record<string, unknown>>(files, at('tokenizer_config.json'), 'tokenizer config');
    const specialTokens = await optionalJson<Record<string, unknown>>(files, at('special_tokens_map.json'), 'special tokens map');
    return new ClipTokenizer({ vocab, merges, ...(config ? { config } : {}), ...(specialTokens ? { specialTokens } : {}) });
  }

  /** {@link fromFiles} on a local folder. */
  static async fromDirectory(dir: string): Promise<ClipTokenizer> {
    return ClipTokenizer.fromFiles(await localModelFiles(dir));
  }

  private bpe(token: string): string[] {
    const cached = this.cache.get(token);
    if (cached) return cached;
    const chars = [...token];
    let word = [...chars.slice(0, -1), `${chars[chars.length - 1]}</w>`];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best]!;
      const second = word[best + 1]!;
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else merged.push(word[i++]!);
      }
      word = merged;
    }
    this.cache.set(token, word);
    return word;
  }

  /** BPE token strings of a text (no special tokens added). */
  tokenize(text: string): string[] {
    const out: string[] = [];
    // Added tokens written in the text stay whole, as the reference's added-token split does.
    const pieces = text.split(this.addedPattern);
    for (const piece of pieces) {
      if (this.addedTokens.has(piece)) {
        out.push(piece);
        continue;
      }
      const cleaned = basicClean(piece);
      for (const m of cleaned.matchAll(CLIP_PATTERN)) {
        const bytes = new TextEncoder().encode(m[0]);
        let mapped = '';
        for (const b of bytes) mapped += BYTE_ENCODER[b];
        out.push(...this.bpe(mapped));
      }
    }
    return out;
  }

  /** Token ids: [bos, …, eos], truncated to maxLength and padded with the pad id to maxLength. */
  encode(text: string, opts: { padding?: boolean; maxLength?: number } = {}): number[] {
    const max = opts.maxLength ?? this.maxLength;
    const ids = this.tokenize(text).map((t) => this.files.vocab[t] ?? this.unkId);
    const body = ids.slice(0, Math.max(0, max - 2));
    const out = [this.bosId, ...body, this.eosId];
    if (opts.padding ?? true) while (out.length < max) out.push(this.padId);
    return out;
  }
}
