// The agreement map's picture as a PNG (Node, Deno). The map itself and its RGBA picture are
// computed in agreement.ts (which the browser entry shares).

import pngjs from 'pngjs';
import type { RgbImage } from '../io/image.js';
import { agreementPixels, type AgreementMap, type RenderOptions } from './agreement.js';

export { AGREEMENT_METRICS, agreementMap, agreementFromEmbeddings, agreementPixels, agreementTensor, tokenGrid, upsampleGrid, viridis, renderLayout, RENDER_LAYOUT, type AgreementMap, type AgreementPicture, type RenderOptions } from './agreement.js';

/** The map's picture (agreementPixels) as PNG bytes (RGB). */
export function renderAgreement(map: AgreementMap, imageA: RgbImage, imageB: RgbImage, o: RenderOptions = {}): Uint8Array {
  const pic = agreementPixels(map, imageA, imageB, o);
  const png = new pngjs.PNG({ width: pic.width, height: pic.height, colorType: 2 });
  png.data.set(pic.data);
  const bytes = pngjs.PNG.sync.write(png, { colorType: 2 });
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
