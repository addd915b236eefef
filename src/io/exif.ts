// The EXIF orientation tag (0x0112) as Pillow 9.4's Image.getexif() reads it: a TIFF structure
// (optionally behind "Exif\0\0"), IFD0, the last 0x0112 entry of an integer type, its first value.

const TYPE_SIZE: Record<number, number> = { 1: 1, 3: 2, 4: 4, 6: 1, 8: 2, 9: 4 };

/** The orientation tag's value from TIFF/EXIF bytes (any integer; 2–8 ask for a transpose), null
 *  when there is no such tag or the structure is unreadable. */
export function exifOrientation(data: Uint8Array): number | null {
  let t = data;
  if (t.length >= 6 && t[0] === 0x45 && t[1] === 0x78 && t[2] === 0x69 && t[3] === 0x66 && t[4] === 0 && t[5] === 0) t = t.subarray(6);
  if (t.length < 8) return null;
  let le: boolean;
  if (t[0] === 0x49 && t[1] === 0x49 && t[2] === 42 && t[3] === 0) le = true;
  else if (t[0] === 0x4d && t[1] === 0x4d && t[2] === 0 && t[3] === 42) le = false;
  else return null;
  const dv = new DataView(t.buffer, t.byteOffset, t.byteLength);
  const ifd = dv.getUint32(4, le);
  if (ifd + 2 > t.length) return null;
  const n = dv.getUint16(ifd, le);
  let orientation: number | null = null;
  for (let i = 0; i < n; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > t.length) break;
    if (dv.getUint16(e, le) !== 0x0112) continue;
    const type = dv.getUint16(e + 2, le);
    const unit = TYPE_SIZE[type];
    const count = dv.getUint32(e + 4, le);
    if (!unit || count === 0) continue;
    let at = e + 8;
    if (unit * count > 4) {
      at = dv.getUint32(e + 8, le);
      if (at + unit * count > t.length) continue;
    }
    const v =
      type === 1 ? dv.getUint8(at) : type === 3 ? dv.getUint16(at, le) : type === 4 ? dv.getUint32(at, le) : type === 6 ? dv.getInt8(at) : type === 8 ? dv.getInt16(at, le) : dv.getInt32(at, le);
    orientation = v;
  }
  return orientation;
}
