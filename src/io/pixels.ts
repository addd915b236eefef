// Decoded images before and after the reference loader's convert("RGB") and exif_transpose.

export interface RgbImage {
  width: number;
  height: number;
  /** Interleaved RGB, row-major, width·height·3 bytes. */
  data: Uint8Array;
}

export type ImageFormat = 'png' | 'jpeg' | 'bmp';

/** The PIL mode an image opens as. */
export type PilMode = '1' | 'L' | 'LA' | 'P' | 'RGB' | 'RGBA' | 'I' | 'CMYK';

/** An image as `PIL.Image.open` holds it (what `np.array(Image.open(f))` shows), before any
 *  conversion or EXIF transpose. */
export interface StoredImage {
  format: ImageFormat;
  mode: PilMode;
  width: number;
  height: number;
  /** Samples per pixel in `data`. */
  channels: number;
  /** Interleaved samples: 0/1 for mode 1, palette indices for P, 0–65535 for I (16-bit PNG gray). */
  data: Uint8Array | Uint16Array;
  /** Mode P: 256 RGB entries as PIL fills them (entries missing from the file are gray: i, i, i). */
  palette?: Uint8Array;
  /** EXIF orientation (1–8) as ImageOps.exif_transpose reads it. */
  orientation: number;
}

export const MODE_CHANNELS: Record<PilMode, number> = { '1': 1, L: 1, LA: 2, P: 1, RGB: 3, RGBA: 4, I: 1, CMYK: 4 };

/** A 256-entry palette: the given RGB triples, then PIL's gray defaults. */
export function pilPalette(rgb: Uint8Array | null, entries: number): Uint8Array {
  const p = new Uint8Array(768);
  for (let i = 0; i < 256; i++) p[i * 3] = p[i * 3 + 1] = p[i * 3 + 2] = i;
  if (rgb) p.set(rgb.subarray(0, Math.min(entries, 256) * 3));
  return p;
}

export type SixteenBit = 'scale' | 'pil' | 'pil-clamp';

/** PIL's convert("RGB"). Mode I (16-bit gray PNG): `'pil'`/`'pil-clamp'` clamp to 255 as PIL does,
 *  `'scale'` maps 0–65535 to 0–255 (round(v·255/65535)). */
export function toRgb(img: StoredImage, sixteenBit: SixteenBit = 'scale'): RgbImage {
  const { width, height, data, mode } = img;
  const n = width * height;
  if (mode === 'RGB') return { width, height, data: data as Uint8Array };
  const out = new Uint8Array(n * 3);
  switch (mode) {
    case '1':
      for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[i] ? 255 : 0;
      break;
    case 'L':
      for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[i]!;
      break;
    case 'LA':
      for (let i = 0; i < n; i++) out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = data[i * 2]!;
      break;
    case 'I':
      for (let i = 0; i < n; i++) {
        const v = data[i]!;
        out[i * 3] = out[i * 3 + 1] = out[i * 3 + 2] = sixteenBit === 'scale' ? Math.round((v * 255) / 65535) : v > 255 ? 255 : v;
      }
      break;
    case 'P': {
      const pal = img.palette ?? pilPalette(null, 0);
      for (let i = 0; i < n; i++) {
        const k = data[i]! * 3;
        out[i * 3] = pal[k]!;
        out[i * 3 + 1] = pal[k + 1]!;
        out[i * 3 + 2] = pal[k + 2]!;
      }
      break;
    }
    case 'RGBA':
      for (let i = 0; i < n; i++) {
        out[i * 3] = data[i * 4]!;
        out[i * 3 + 1] = data[i * 4 + 1]!;
        out[i * 3 + 2] = data[i * 4 + 2]!;
      }
      break;
    case 'CMYK':
      // Convert.c cmyk2rgb: nk = 255 − K; v = nk − MULDIV255(c, nk).
      for (let i = 0; i < n; i++) {
        const nk = 255 - data[i * 4 + 3]!;
        for (let c = 0; c < 3; c++) {
          const t = data[i * 4 + c]! * nk + 128;
          const v = nk - (((t >> 8) + t) >> 8);
          out[i * 3 + c] = v < 0 ? 0 : v;
        }
      }
      break;
  }
  return { width, height, data: out };
}

/** PIL's ImageOps.exif_transpose for orientations 2–8. */
export function applyOrientation(img: RgbImage, orientation: number): RgbImage {
  if (orientation <= 1 || orientation > 8) return img;
  const { width: w, height: h, data } = img;
  const swap = orientation >= 5;
  const ow = swap ? h : w;
  const oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++) {
    for (let x = 0; x < ow; x++) {
      // Source coordinate of output pixel (x, y) for each EXIF orientation.
      let sx: number, sy: number;
      switch (orientation) {
        case 2: sx = w - 1 - x; sy = y; break; // mirror horizontal
        case 3: sx = w - 1 - x; sy = h - 1 - y; break; // rotate 180
        case 4: sx = x; sy = h - 1 - y; break; // mirror vertical
        case 5: sx = y; sy = x; break; // transpose
        case 6: sx = y; sy = h - 1 - x; break; // rotate 90 CW
        case 7: sx = w - 1 - y; sy = h - 1 - x; break; // transverse
        default: sx = w - 1 - y; sy = x; break; // 8: rotate 270 CW
      }
      const s = (sy * w + sx) * 3;
      const d = (y * ow + x) * 3;
      out[d] = data[s]!;
      out[d + 1] = data[s + 1]!;
      out[d + 2] = data[s + 2]!;
    }
  }
  return { width: ow, height: oh, data: out };
}
