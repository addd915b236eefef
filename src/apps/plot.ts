// Pictures of results as PNG bytes: a sweep's accuracy against timestep per layer beside its
// layer × timestep heatmap (the paper's Figure 5), and a retrieval grid (the query and its top-k
// neighbours with their scores, one row per metric: the paper's Figure 4). Labels are drawn with
// the small 5×7 bitmap font below (upper case, digits and a little punctuation).

import pngjs from 'pngjs';
import type { RgbImage } from '../io/image.js';
import { viridis } from './agreement.js';

// ---------------------------------------------------------------------------------------------
// The font: each glyph is 7 rows of 5 pixels, a row as two hex digits (bit 4 = the left column).

const GLYPHS: Record<string, string> = {
  ' ': '00000000000000',
  '0': '0E11131519110E',
  '1': '040C040404040E',
  '2': '0E11010204081F',
  '3': '1F02040201110E',
  '4': '02060A121F0202',
  '5': '1F101E0101110E',
  '6': '0608101E11110E',
  '7': '1F010204080808',
  '8': '0E11110E11110E',
  '9': '0E11110F01020C',
  A: '0E11111F111111',
  B: '1E11111E11111E',
  C: '0E11101010110E',
  D: '1C12111111121C',
  E: '1F10101E10101F',
  F: '1F10101E101010',
  G: '0E11101711110F',
  H: '1111111F111111',
  I: '0E04040404040E',
  J: '0702020202120C',
  K: '11121418141211',
  L: '1010101010101F',
  M: '111B1515111111',
  N: '11111915131111',
  O: '0E11111111110E',
  P: '1E11111E101010',
  Q: '0E11111115120D',
  R: '1E11111E141211',
  S: '0F10100E01011E',
  T: '1F040404040404',
  U: '1111111111110E',
  V: '11111111110A04',
  W: '1111111515150A',
  X: '11110A040A1111',
  Y: '1111110A040404',
  Z: '1F01020408101F',
  '.': '00000000000C0C',
  ',': '000000000C0408',
  '-': '0000001F000000',
  '–': '0000001F000000',
  _: '0000000000001F',
  ':': '000C0C000C0C00',
  '%': '18190204081303',
  '/': '00010204081000',
  '(': '02040808080402',
  ')': '08040202020408',
  '=': '00001F001F0000',
  '+': '0004041F040400',
  '*': '0004150E150400',
  '[': '0E08080808080E',
  ']': '0E02020202020E',
  '·': '0000000C0C0000',
  '×': '00110A040A1100',
  '#': '0A0A1F0A1F0A0A',
  "'": '04040800000000',
  '?': '0E110102040004',
  '<': '02040810080402',
  '>': '08040201020408',
};

/** The font's cell (5×7 glyph, one column and two rows of spacing) at scale 1. */
export const FONT_WIDTH = 6;
export const FONT_HEIGHT = 9;

type Rgb = readonly [number, number, number];

/** An RGB canvas with the drawing the pictures need. */
export class Canvas {
  readonly data: Uint8Array;
  constructor(
    readonly width: number,
    readonly height: number,
    background: Rgb = [255, 255, 255],
  ) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw new RangeError(`Canvas: ${width}×${height} is not a picture size`);
    this.data = new Uint8Array(width * height * 3);
    for (let i = 0; i < width * height; i++) this.data.set(background, 3 * i);
  }
  pixel(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    this.data.set([c[0], c[1], c[2]].map((v) => Math.max(0, Math.min(255, Math.round(v)))), 3 * (y * this.width + x));
  }
  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = Math.round(y); j < Math.round(y + h); j++) for (let i = Math.round(x); i < Math.round(x + w); i++) this.pixel(i, j, c);
  }
  frame(x: number, y: number, w: number, h: number, c: Rgb, thickness = 1): void {
    this.rect(x, y, w, thickness, c);
    this.rect(x, y + h - thickness, w, thickness, c);
    this.rect(x, y, thickness, h, c);
    this.rect(x + w - thickness, y, thickness, h, c);
  }
  /** A line of `thickness` pixels (Bresenham-like stepping). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1): void {
    const n = Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0), 1);
    const r = (thickness - 1) / 2;
    for (let i = 0; i <= n; i++) {
      const x = x0 + ((x1 - x0) * i) / n;
      const y = y0 + ((y1 - y0) * i) / n;
      this.rect(x - r, y - r, thickness, thickness, c);
    }
  }
  /** Text at (x, y) (its top left), upper-cased; unknown characters as '?'. Returns its width. */
  text(x: number, y: number, s: string, c: Rgb = [0, 0, 0], scale = 1): number {
    let cx = x;
    for (const ch of s.toUpperCase()) {
      const g = GLYPHS[ch] ?? GLYPHS['?']!;
      for (let row = 0; row < 7; row++) {
        const bits = parseInt(g.slice(2 * row, 2 * row + 2), 16);
        for (let col = 0; col < 5; col++) if (bits & (16 >> col)) this.rect(cx + col * scale, y + row * scale, scale, scale, c);
      }
      cx += FONT_WIDTH * scale;
    }
    return cx - x;
  }
  /** Text turned a quarter left (reads bottom to top), its glyphs' tops facing left; (x, y) = bottom left. */
  textUp(x: number, y: number, s: string, c: Rgb = [0, 0, 0], scale = 1): void {
    let cy = y;
    for (const ch of s.toUpperCase()) {
      const g = GLYPHS[ch] ?? GLYPHS['?']!;
      for (let row = 0; row < 7; row++) {
        const bits = parseInt(g.slice(2 * row, 2 * row + 2), 16);
        for (let col = 0; col < 5; col++) if (bits & (16 >> col)) this.rect(x + row * scale, cy - (col + 1) * scale, scale, scale, c);
      }
      cy -= FONT_WIDTH * scale;
    }
  }
  /** Draws an image scaled to fit w×h (aspect kept, centred; area-averaged when shrinking). */
  image(img: RgbImage, x: number, y: number, w: number, h: number): void {
    const f = Math.min(w / img.width, h / img.height);
    const dw = Math.max(1, Math.round(img.width * f));
    const dh = Math.max(1, Math.round(img.height * f));
    const ox = x + Math.floor((w - dw) / 2);
    const oy = y + Math.floor((h - dh) / 2);
    for (let j = 0; j < dh; j++) {
      const sy0 = Math.floor((j * img.height) / dh);
      const sy1 = Math.max(sy0 + 1, Math.floor(((j + 1) * img.height) / dh));
      for (let i = 0; i < dw; i++) {
        const sx0 = Math.floor((i * img.width) / dw);
        const sx1 = Math.max(sx0 + 1, Math.floor(((i + 1) * img.width) / dw));
        let r = 0;
        let g = 0;
        let b = 0;
        for (let sy = sy0; sy < sy1; sy++) {
          for (let sx = sx0; sx < sx1; sx++) {
            const k = 3 * (sy * img.width + sx);
            r += img.data[k]!;
            g += img.data[k + 1]!;
            b += img.data[k + 2]!;
          }
        }
        const n = (sy1 - sy0) * (sx1 - sx0);
        this.pixel(ox + i, oy + j, [r / n, g / n, b / n]);
      }
    }
  }
  png(): Uint8Array {
    const png = new pngjs.PNG({ width: this.width, height: this.height, colorType: 2 });
    const rgba = png.data;
    for (let i = 0; i < this.width * this.height; i++) {
      rgba[4 * i] = this.data[3 * i]!;
      rgba[4 * i + 1] = this.data[3 * i + 1]!;
      rgba[4 * i + 2] = this.data[3 * i + 2]!;
      rgba[4 * i + 3] = 255;
    }
    const bytes = pngjs.PNG.sync.write(png, { colorType: 2 });
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
}

/** Distinct line colours (Tableau 10). */
const PALETTE: readonly Rgb[] = [
  [31, 119, 180],
  [255, 127, 14],
  [44, 160, 44],
  [214, 39, 40],
  [148, 103, 189],
  [140, 86, 75],
  [227, 119, 194],
  [127, 127, 127],
  [188, 189, 34],
  [23, 190, 207],
];

// ---------------------------------------------------------------------------------------------
// The sweep plot.

export interface SweepPlotCell {
  /** Image side (one panel row per size; absent: one row). */
  size?: number;
  /** The x axis (the step; absent for the ViTs: one column). */
  step?: number;
  /** The diffusion timestep of the step, shown under it. */
  t?: number;
  block?: string;
  layer: number;
  /** Accuracy in percent. */
  accuracy: number;
}

export interface SweepPlotOptions {
  /** The first title line, e.g. "NIGHTS · DIFFSIM · weights/tiny/sd15". */
  title: string;
  /** A second line under it (e.g. the item count). */
  subtitle?: string;
  /** Text scale (default 2). */
  scale?: number;
}

const layerLabel = (c: { block?: string; layer: number }) => (c.block !== undefined ? `${c.block} ${c.layer}` : `layer ${c.layer}`);

/** Accuracy against step per layer (left) and the layer × step heatmap with the best cell framed
 *  (right), one row of the two panels per image size; PNG bytes (RGB). */
export function renderSweepPlot(cells: readonly SweepPlotCell[], o: SweepPlotOptions): Uint8Array {
  if (!cells.length) throw new RangeError('renderSweepPlot: no cells');
  for (const c of cells) if (!Number.isFinite(c.accuracy)) throw new RangeError(`renderSweepPlot: cell ${layerLabel(c)} has accuracy ${c.accuracy}`);
  const k = o.scale ?? 2;
  const fw = FONT_WIDTH * k;
  const fh = FONT_HEIGHT * k;
  const sizes = [...new Set(cells.map((c) => c.size ?? -1))].sort((a, b) => a - b);
  const steps = [...new Set(cells.map((c) => c.step ?? -1))].sort((a, b) => a - b);
  const layerKeys: { block?: string; layer: number }[] = [];
  const blockRank = (b?: string) => (b === 'down' ? 0 : b === 'mid' ? 1 : b === 'up' ? 2 : 3);
  for (const c of cells) if (!layerKeys.some((l) => l.block === c.block && l.layer === c.layer)) layerKeys.push({ ...(c.block !== undefined ? { block: c.block } : {}), layer: c.layer });
  layerKeys.sort((a, b) => blockRank(a.block) - blockRank(b.block) || a.layer - b.layer);
  const at = (size: number, step: number, l: { block?: string; layer: number }) => cells.find((c) => (c.size ?? -1) === size && (c.step ?? -1) === step && c.block === l.block && c.layer === l.layer);
  let best = cells[0]!;
  for (const c of cells) if (c.accuracy > best.accuracy) best = c;
  const lo = Math.min(...cells.map((c) => c.accuracy));
  const hi = Math.max(...cells.map((c) => c.accuracy));
  // The line chart's y range: whole tens around the data.
  const yMin = Math.max(0, Math.floor(lo / 10) * 10 - (hi - lo < 1 ? 10 : 0));
  const yMax = Math.min(100, Math.max(yMin + 10, Math.ceil(hi / 10) * 10));

  const margin = 2 * fw;
  const chartW = Math.max(steps.length * 5 * fw, 24 * fw);
  const chartH = 100 * k;
  const legendW = Math.max(...layerKeys.map((l) => layerLabel(l).length)) * fw + 4 * fw;
  const rowLabelW = Math.max(...layerKeys.map((l) => layerLabel(l).length)) * fw + fw;
  const cellW = Math.max(5 * fw, 24 * k);
  const cellH = Math.max(fh + 4 * k, 14 * k);
  const heatFooter = steps[0]! < 0 ? 'best framed' : 'step index · best framed';
  const heatW = Math.max(rowLabelW + steps.length * cellW, rowLabelW + heatFooter.length * fw);
  const heatH = layerKeys.length * cellH;
  const panelH = Math.max(chartH, heatH) + 6 * fh;
  const leftW = 6 * fw + chartW + legendW;
  const width = margin + leftW + 2 * margin + heatW + margin;
  const titleH = (o.subtitle ? 3 : 2) * fh;
  const height = titleH + sizes.length * panelH + margin;
  const cv = new Canvas(width, height);
  cv.text(margin, fh / 2, o.title, [0, 0, 0], k);
  if (o.subtitle) cv.text(margin, fh / 2 + fh, o.subtitle, [80, 80, 80], k);
  const grey: Rgb = [200, 200, 200];
  const xLabel = (step: number) => (step < 0 ? '-' : String(step));

  sizes.forEach((size, si) => {
    const top = titleH + si * panelH + fh;
    if (size >= 0) cv.text(margin, top - fh, `size ${size} px`, [0, 0, 0], k);
    // Line chart: axes, grid, one line per layer.
    const x0 = margin + 6 * fw;
    const y0 = top + fh;
    const px = (i: number) => x0 + (steps.length === 1 ? chartW / 2 : (i * chartW) / (steps.length - 1));
    const py = (acc: number) => y0 + chartH - ((acc - yMin) / (yMax - yMin)) * chartH;
    for (let v = yMin; v <= yMax; v += 10) {
      cv.line(x0, py(v), x0 + chartW, py(v), [230, 230, 230]);
      const label = `${v}`;
      cv.text(x0 - (label.length + 1) * fw, py(v) - (7 * k) / 2, label, [0, 0, 0], k);
    }
    cv.line(x0, y0, x0, y0 + chartH, [0, 0, 0], k);
    cv.line(x0, y0 + chartH, x0 + chartW, y0 + chartH, [0, 0, 0], k);
    steps.forEach((s, i) => {
      cv.line(px(i), y0 + chartH, px(i), y0 + chartH + 3 * k, [0, 0, 0], k);
      const label = xLabel(s);
      cv.text(px(i) - (label.length * fw) / 2, y0 + chartH + 5 * k, label, [0, 0, 0], k);
    });
    // The timestep t under each step (grey), when known.
    const tOf = (s: number) => cells.find((c) => (c.step ?? -1) === s && c.t !== undefined)?.t;
    const hasT = steps.some((s) => tOf(s) !== undefined);
    if (hasT) {
      steps.forEach((s, i) => {
        const t = tOf(s);
        if (t === undefined) return;
        const label = `t${t}`;
        cv.text(px(i) - (label.length * fw) / 2, y0 + chartH + 5 * k + fh, label, [120, 120, 120], k);
      });
    }
    const axis = steps[0]! < 0 ? 'encoder' : hasT ? 'step index (timestep t)' : 'step index';
    cv.text(x0 + chartW / 2 - (axis.length * fw) / 2, y0 + chartH + 5 * k + (hasT ? 2 : 1) * fh, axis, [0, 0, 0], k);
    cv.textUp(margin - fw, y0 + chartH / 2 + (10 * fw) / 2, 'accuracy %', [0, 0, 0], k);
    layerKeys.forEach((l, li) => {
      const colour = PALETTE[li % PALETTE.length]!;
      let prev: [number, number] | undefined;
      steps.forEach((s, i) => {
        const c = at(size, s, l);
        if (!c) {
          prev = undefined;
          return;
        }
        const p: [number, number] = [px(i), py(c.accuracy)];
        if (prev) cv.line(prev[0], prev[1], p[0], p[1], colour, k);
        cv.rect(p[0] - 2 * k, p[1] - 2 * k, 4 * k + 1, 4 * k + 1, colour);
        prev = p;
      });
      // Legend.
      const ly = y0 + li * fh;
      cv.rect(x0 + chartW + fw, ly + 2 * k, 2 * fw, 3 * k, colour);
      cv.text(x0 + chartW + 3.5 * fw, ly, layerLabel(l), [0, 0, 0], k);
    });
    // Heatmap: rows = layers, columns = steps; the colour scale spans all cells.
    const hx = margin + leftW + 2 * margin;
    const hy = y0;
    cv.text(hx, hy - fh, steps[0]! < 0 ? 'layer' : 'layer × step', [0, 0, 0], k);
    layerKeys.forEach((l, li) => {
      const label = layerLabel(l);
      cv.text(hx + rowLabelW - (label.length + 1) * fw, hy + li * cellH + (cellH - 7 * k) / 2, label, [0, 0, 0], k);
      steps.forEach((s, i) => {
        const c = at(size, s, l);
        const x = hx + rowLabelW + i * cellW;
        const y = hy + li * cellH;
        if (!c) {
          cv.rect(x, y, cellW, cellH, grey);
          return;
        }
        const t = hi > lo ? (c.accuracy - lo) / (hi - lo) : 0.5;
        const colour = viridis(t);
        cv.rect(x, y, cellW, cellH, colour);
        const text = c.accuracy.toFixed(0);
        const ink: Rgb = t > 0.6 ? [0, 0, 0] : [255, 255, 255];
        cv.text(x + (cellW - text.length * fw) / 2, y + (cellH - 7 * k) / 2, text, ink, k);
        if (c === best) {
          cv.frame(x, y, cellW, cellH, [255, 0, 0], 2 * k);
        }
      });
    });
    steps.forEach((s, i) => {
      const label = xLabel(s);
      cv.text(hx + rowLabelW + i * cellW + (cellW - label.length * fw) / 2, hy + heatH + 3 * k, label, [0, 0, 0], k);
    });
    cv.text(hx + rowLabelW, hy + heatH + 3 * k + fh, heatFooter, [0, 0, 0], k);
  });
  return cv.png();
}

// ---------------------------------------------------------------------------------------------
// The retrieval grid.

export interface RetrievalGridRow {
  /** The row's label (the metric). */
  label: string;
  /** Best first. */
  results: readonly { image: RgbImage; score: number; name?: string }[];
}

export interface RetrievalGridOptions {
  /** Thumbnail side in pixels (default 128). */
  thumb?: number;
  /** Text scale (default 1 for thumbnails under 160 px, else 2). */
  scale?: number;
  /** Digits after the point of the scores (default 4). */
  digits?: number;
  title?: string;
}

/** The query (left, spanning the rows) and per metric row its neighbours as thumbnails with their
 *  scores under them (Figure 4 of the paper); PNG bytes (RGB). */
export function renderRetrievalGrid(query: RgbImage, rows: readonly RetrievalGridRow[], o: RetrievalGridOptions = {}): Uint8Array {
  if (!rows.length) throw new RangeError('renderRetrievalGrid: no rows');
  const thumb = o.thumb ?? 128;
  if (!Number.isInteger(thumb) || thumb < 16 || thumb > 1024) throw new RangeError(`renderRetrievalGrid: thumb must be an integer in 16–1024, got ${thumb}`);
  const k = o.scale ?? (thumb < 160 ? 1 : 2);
  const fw = FONT_WIDTH * k;
  const fh = FONT_HEIGHT * k;
  const digits = o.digits ?? 4;
  const gap = Math.max(4, Math.round(thumb / 16));
  const cols = Math.max(...rows.map((r) => r.results.length));
  const labelW = Math.max(...rows.map((r) => r.label.length), 5) * fw + gap;
  const rowH = thumb + 2 * fh + gap;
  const titleH = o.title ? 2 * fh : 0;
  const width = gap + thumb + 2 * gap + labelW + cols * (thumb + gap);
  const height = titleH + gap + Math.max(rows.length * rowH, thumb + 2 * fh) + gap;
  const cv = new Canvas(width, height);
  if (o.title) cv.text(gap, gap, o.title, [0, 0, 0], k);
  const top = titleH + gap;
  cv.text(gap, top, 'query', [0, 0, 0], k);
  cv.image(query, gap, top + fh, thumb, thumb);
  cv.frame(gap - 2, top + fh - 2, thumb + 4, thumb + 4, [0, 0, 0], 2);
  rows.forEach((r, ri) => {
    const y = top + ri * rowH;
    const x0 = gap + thumb + 2 * gap;
    cv.text(x0, y + fh + thumb / 2 - (7 * k) / 2, r.label, [0, 0, 0], k);
    r.results.forEach((res, i) => {
      const x = x0 + labelW + i * (thumb + gap);
      cv.text(x, y, `#${i + 1}`, [80, 80, 80], k);
      cv.rect(x, y + fh, thumb, thumb, [235, 235, 235]);
      cv.image(res.image, x, y + fh, thumb, thumb);
      const s = Number.isFinite(res.score) ? res.score.toFixed(digits) : String(res.score);
      cv.text(x + (thumb - s.length * fw) / 2, y + fh + thumb + 2, s, [0, 0, 0], k);
    });
  });
  return cv.png();
}
