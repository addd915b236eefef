// The agreement map on Node: images by path as well, and the picture as a PNG. The map itself and
// its RGBA picture are computed in agreement.ts (which the browser entry shares).

import pngjs from 'pngjs';
import { loadImage, type RgbImage } from '../io/image.js';
import type { ImageInput, Metric } from '../diffsim/metric-core.js';
import { agreementPixels, computeAgreementMap, type AgreementMap, type RenderOptions } from './agreement.js';

export { AGREEMENT_METRICS, agreementFromEmbeddings, agreementPixels, agreementTensor, tokenGrid, upsampleGrid, viridis, renderLayout, RENDER_LAYOUT, type AgreementMap, type AgreementPicture, type RenderOptions } from './agreement.js';

/** The agreement map of A against B (A embedded in role A, B in role B, as `metric.score(a, b)`);
 *  images are paths, encoded bytes or pixels. */
export function agreementMap(metric: Metric, a: ImageInput, b: ImageInput): Promise<AgreementMap> {
  return computeAgreementMap(metric, a, b, (path) => loadImage(path));
}

/** The map's picture (agreementPixels) as PNG bytes (RGB). */
export function renderAgreement(map: AgreementMap, imageA: RgbImage, imageB: RgbImage, o: RenderOptions = {}): Uint8Array {
  const pic = agreementPixels(map, imageA, imageB, o);
  const png = new pngjs.PNG({ width: pic.width, height: pic.height, colorType: 2 });
  png.data.set(pic.data);
  const bytes = pngjs.PNG.sync.write(png, { colorType: 2 });
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
