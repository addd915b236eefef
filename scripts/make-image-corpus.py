#!/usr/bin/env python3
# Builds test/fixtures/images/: small PNG, JPEG and BMP files of every kind the decoder handles,
# and reference.safetensors with what the reference loader makes of each one
# (PIL.Image.open → ImageOps.exif_transpose → convert("RGB"), HWC uint8, as "<file>") and, for
# PNG/BMP files opened as mode P, 1, L, LA or I, the samples as PIL stores them ("<file>#stored":
# palette indices for P, 0/1 for mode 1, int32 for I; no EXIF transpose).
#
# It was run once, on Debian 12 with Pillow 9.4.0 (python3-pil, libjpeg-turbo 2.1.5 inside) and
# libjpeg-turbo 2.1.5's cjpeg/jpegtran (libjpeg-turbo-progs), to produce the committed files:
#   /usr/bin/python3 scripts/make-image-corpus.py
# The package and its tests never run Python; they only read the committed files.

import io
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import zlib

import PIL
from PIL import Image, ImageOps

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'images')

files = {}  # name -> (bytes, description)


def add(name, data, desc):
    assert name not in files, name
    files[name] = (data, desc)


# ---------------------------------------------------------------- synthetic content

def content(w, h, seed, channels=3, maxval=255):
    """Rows of interleaved samples: gradients, a disc, stripes and noise (deterministic)."""
    rnd = random.Random(seed)
    cx, cy, r = rnd.uniform(0.3, 0.7) * w, rnd.uniform(0.3, 0.7) * h, min(w, h) * rnd.uniform(0.2, 0.4)
    rows = []
    for y in range(h):
        row = []
        for x in range(w):
            inside = (x - cx) ** 2 + (y - cy) ** 2 < r * r
            for c in range(channels):
                g = (x * (c + 1) * 7 + y * (3 - c % 3) * 5) / (w * 7 + h * 5 + 1)
                v = g * 0.7 + (0.25 if inside else 0.0) + (0.08 if ((x // 3 + y // 2 + c) % 4 == 0) else 0.0)
                v += rnd.uniform(-0.04, 0.04)
                v = min(max(v, 0.0), 1.0)
                row.append(int(round(v * maxval)))
        rows.append(row)
    return rows


def image_from_rows(rows, w, h, mode):
    flat = bytes(v for row in rows for v in row)
    return Image.frombytes(mode, (w, h), flat)


# ---------------------------------------------------------------- PNG writer

def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xFFFFFFFF)


def pack_row(samples, bd):
    if bd == 8:
        return bytes(samples)
    if bd == 16:
        return b''.join(struct.pack('>H', v) for v in samples)
    out = bytearray()
    acc = 0
    n = 0
    for v in samples:
        acc = (acc << bd) | v
        n += bd
        if n == 8:
            out.append(acc)
            acc = 0
            n = 0
    if n:
        out.append(acc << (8 - n))
    return bytes(out)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp, filters):
    """rows: packed bytes per row; each row gets filter type filters(i)."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b''
    for i, row in enumerate(rows):
        f = filters(i)
        out.append(f)
        for x in range(len(row)):
            a = row[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            out.append((row[x] - pred) & 0xFF)
        prev = row
    return bytes(out)


ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_bytes(w, h, ct, bd, rows, palette=None, trns=None, interlace=False, filters=lambda i: i % 5,
              split=None, level=9, strategy=zlib.Z_DEFAULT_STRATEGY, before=b'', after=b''):
    ch = CHANNELS[ct]
    bpp = max(1, ch * bd // 8)
    if interlace:
        raw = b''
        for x0, y0, dx, dy in ADAM7:
            sub = [rows[y][x * ch:(x + 1) * ch] for y in range(y0, h, dy) for x in range(x0, w, dx)]
            pw = len(range(x0, w, dx))
            ph = len(range(y0, h, dy))
            if pw == 0 or ph == 0:
                continue
            prow = [pack_row([s for px in sub[r * pw:(r + 1) * pw] for s in px], bd) for r in range(ph)]
            raw += filter_rows(prow, bpp, filters)
    else:
        raw = filter_rows([pack_row(r, bd) for r in rows], bpp, filters)
    co = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    z = co.compress(raw) + co.flush()
    ihdr = struct.pack('>IIBBBBB', w, h, bd, ct, 0, 0, 1 if interlace else 0)
    out = b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
    if palette is not None:
        out += chunk(b'PLTE', bytes(v for rgb in palette for v in rgb))
    if trns is not None:
        out += chunk(b'tRNS', trns)
    out += before
    if split:
        for i in range(0, len(z), split):
            out += chunk(b'IDAT', z[i:i + split])
            if i == 0:
                out += chunk(b'IDAT', b'')  # an empty IDAT in the middle
    else:
        out += chunk(b'IDAT', z)
    return out + after + chunk(b'IEND', b'')


def pil_png(im, **kw):
    b = io.BytesIO()
    im.save(b, 'PNG', **kw)
    return b.getvalue()


def exif_bytes(orientation):
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()  # starts with b"Exif\0\0"


def build_png():
    # Gray at every bit depth.
    for bd, (w, h) in [(1, (37, 21)), (2, (23, 19)), (4, (29, 17)), (8, (33, 27)), (16, (31, 23))]:
        rows = content(w, h, bd, 1, (1 << bd) - 1)
        add(f'png_gray{bd}.png', png_bytes(w, h, 0, bd, rows), f'grayscale {bd}-bit, all five filter types')
    rows = content(19, 14, 101, 1, 255)
    add('png_gray8_trns.png', png_bytes(19, 14, 0, 8, rows, trns=struct.pack('>H', rows[3][3])), 'grayscale 8-bit with a tRNS colour')
    rows = content(21, 13, 102, 1, 65535)
    add('png_gray16_trns_adam7.png', png_bytes(21, 13, 0, 16, rows, trns=struct.pack('>H', rows[1][1]), interlace=True), 'grayscale 16-bit, tRNS, Adam7')
    # Gray + alpha, RGB, RGBA at 8 and 16 bits.
    for ct, kind in [(4, 'la'), (2, 'rgb'), (6, 'rgba')]:
        for bd, (w, h) in [(8, (27, 22)), (16, (23, 17))]:
            rows = content(w, h, ct * 100 + bd, CHANNELS[ct], (1 << bd) - 1)
            add(f'png_{kind}{bd}.png', png_bytes(w, h, ct, bd, rows), f'{kind.upper()} {bd}-bit')
    rows = content(20, 15, 301, 3, 255)
    add('png_rgb8_trns.png', png_bytes(20, 15, 2, 8, rows, trns=struct.pack('>HHH', *rows[0][:3])), 'RGB 8-bit with a tRNS colour')
    # Palette at every bit depth; a short palette (indices beyond it); palette + tRNS.
    for bd, (w, h) in [(1, (35, 17)), (2, (22, 21)), (4, (26, 19)), (8, (31, 25))]:
        n = 1 << bd
        rnd = random.Random(bd)
        pal = [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(n)]
        rows = content(w, h, 400 + bd, 1, n - 1)
        add(f'png_palette{bd}.png', png_bytes(w, h, 3, bd, rows, palette=pal), f'palette {bd}-bit')
    rnd = random.Random(9)
    pal = [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(40)]
    rows = content(24, 18, 410, 1, 255)
    add('png_palette8_short.png', png_bytes(24, 18, 3, 8, rows, palette=pal), 'palette 8-bit, 40-entry PLTE, indices up to 255 (PIL shows missing entries as gray)')
    pal = [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(16)]
    rows = content(18, 16, 411, 1, 15)
    add('png_palette4_trns.png', png_bytes(18, 16, 3, 4, rows, palette=pal, trns=bytes([0, 128, 255])), 'palette 4-bit with tRNS alpha')
    # Adam7 interlacing, including images smaller than the 8×8 pattern.
    for name, (w, h), ct, bd in [('gray1', (19, 11), 0, 1), ('palette4', (17, 13), 3, 4), ('rgb8', (23, 19), 2, 8),
                                  ('rgba16', (13, 10), 6, 16), ('gray8_5x3', (5, 3), 0, 8), ('rgb8_1x1', (1, 1), 2, 8),
                                  ('la8_2x9', (2, 9), 4, 8)]:
        maxv = (1 << bd) - 1
        rows = content(w, h, 500 + len(name), CHANNELS[ct], maxv)
        pal = None
        if ct == 3:
            rnd = random.Random(5)
            pal = [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(1 << bd)]
        add(f'png_adam7_{name}.png', png_bytes(w, h, ct, bd, rows, palette=pal, interlace=True), f'Adam7 interlaced {name}')
    # zlib variants: stored blocks, fixed Huffman, Huffman only, RLE; many small IDAT chunks.
    rows = content(25, 20, 600, 3, 255)
    add('png_zlib_stored.png', png_bytes(25, 20, 2, 8, rows, level=0), 'deflate stored blocks')
    add('png_zlib_fixed.png', png_bytes(25, 20, 2, 8, rows, strategy=zlib.Z_FIXED), 'deflate fixed Huffman codes')
    add('png_zlib_huffman.png', png_bytes(25, 20, 2, 8, rows, strategy=zlib.Z_HUFFMAN_ONLY), 'deflate Huffman only')
    add('png_zlib_rle.png', png_bytes(25, 20, 2, 8, rows, strategy=zlib.Z_RLE, filters=lambda i: 0), 'deflate RLE, no filters')
    add('png_idat_split.png', png_bytes(25, 20, 2, 8, rows, split=37), 'IDAT split into 37-byte chunks, one empty IDAT')
    # Narrow and flat images.
    add('png_rgb8_1x40.png', png_bytes(1, 40, 2, 8, content(1, 40, 601, 3, 255)), '1×40 RGB')
    add('png_gray8_40x1.png', png_bytes(40, 1, 0, 8, content(40, 1, 602, 1, 255)), '40×1 gray')
    # Pillow's own encoder.
    base = image_from_rows(content(30, 22, 700, 3, 255), 30, 22, 'RGB')
    add('png_pil_rgb.png', pil_png(base, optimize=True), 'Pillow-written RGB')
    add('png_pil_l.png', pil_png(base.convert('L')), 'Pillow-written L')
    add('png_pil_1.png', pil_png(base.convert('1')), 'Pillow-written mode 1 (dithered)')
    add('png_pil_p.png', pil_png(base.quantize(colors=23)), 'Pillow-written P (23 colours)')
    add('png_pil_la.png', pil_png(base.convert('LA')), 'Pillow-written LA')
    # EXIF orientation in PNG: eXIf before and after IDAT, "Raw profile type exif" text, XMP.
    rows = content(17, 11, 800, 3, 255)
    add('png_exif6.png', png_bytes(17, 11, 2, 8, rows, before=chunk(b'eXIf', exif_bytes(6)[6:])), 'eXIf orientation 6 before IDAT')
    add('png_exif3_trailing.png', png_bytes(17, 11, 2, 8, rows, after=chunk(b'eXIf', exif_bytes(3)[6:])), 'eXIf orientation 3 after IDAT')
    ex = exif_bytes(8)
    hexs = ex.hex()
    profile = '\nexif\n%8d\n' % len(ex) + '\n'.join(hexs[i:i + 72] for i in range(0, len(hexs), 72)) + '\n'
    add('png_rawprofile8.png', png_bytes(17, 11, 2, 8, rows, before=chunk(b'zTXt', b'Raw profile type exif\0\0' + zlib.compress(profile.encode()))),
        'orientation 8 in a zTXt "Raw profile type exif" (ImageMagick style)')
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="5"/></rdf:RDF></x:xmpmeta>'
    add('png_xmp5.png', png_bytes(17, 11, 2, 8, rows, before=chunk(b'iTXt', b'XML:com.adobe.xmp\0\0\0\0\0' + xmp)), 'orientation 5 in XMP (iTXt)')


# ---------------------------------------------------------------- JPEG

def run(cmd, data):
    r = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    return r.stdout


def pnm(rows, w, h, channels):
    head = b'P6' if channels == 3 else b'P5'
    return head + b'\n%d %d\n255\n' % (w, h) + bytes(v for row in rows for v in row)


def cjpeg(rows, w, h, *args, channels=3):
    return run(['cjpeg', *args], pnm(rows, w, h, channels))


def insert_after_soi(j, seg):
    return j[:2] + seg + j[2:]


def segments(j):
    """Splits a JPEG into (marker, payload) up to SOS, then the rest as one piece."""
    out = []
    p = 2
    while True:
        assert j[p] == 0xFF
        m = j[p + 1]
        n = struct.unpack('>H', j[p + 2:p + 4])[0]
        if m == 0xDA:
            out.append((m, j[p + 4:p + 2 + n], j[p + 2 + n:]))
            return out
        out.append((m, j[p + 4:p + 2 + n], None))
        p += 2 + n


def seg(m, payload):
    return bytes([0xFF, m]) + struct.pack('>H', len(payload) + 2) + payload


def ycck_jpeg(cmyk_rows, w, h, sample):
    """YCCK (Adobe transform 2) as libjpeg writes it for Adobe-inverted CMYK input: the YCbCr scan
    of (C, M, Y) taken as RGB and a second scan with 255 − K, spliced into one 4-component
    sequential JPEG."""
    rgb_rows = [[v for i, v in enumerate(row) if i % 4 != 3] for row in cmyk_rows]
    k_rows = [[255 - v for i, v in enumerate(row) if i % 4 == 3] for row in cmyk_rows]
    a = cjpeg(rgb_rows, w, h, '-quality', '88', '-sample', sample)
    b = cjpeg(k_rows, w, h, '-quality', '88', '-grayscale', channels=1)
    sa, sb = segments(a), segments(b)
    out = b'\xff\xd8' + seg(0xEE, b'Adobe' + struct.pack('>HHHB', 100, 0, 0, 2))
    sof = None
    for m, p, rest in sa:
        if m in (0xDB, 0xC4):
            out += seg(m, p)
        if m == 0xC0:
            sof = p
    # The K image's tables get ids 2 and 3 (DQT, DHT DC/AC).
    for m, p, rest in sb:
        if m == 0xDB:
            out += seg(0xDB, bytes([(p[0] & 0xF0) | 2]) + p[1:])
        if m == 0xC4:
            q = 0
            res = b''
            while q < len(p):
                tc_th = p[q]
                cnt = sum(p[q + 1:q + 17])
                res += bytes([(tc_th & 0xF0) | 2]) + p[q + 1:q + 17 + cnt]
                q += 17 + cnt
            out += seg(0xC4, res)
    hmax = max(sof[6 + 3 * i + 1] >> 4 for i in range(3))
    vmax = max(sof[6 + 3 * i + 1] & 15 for i in range(3))
    sof4 = sof[:5] + bytes([4]) + sof[6:15] + bytes([4, (hmax << 4) | vmax, 2])
    out += seg(0xC0, sof4)
    m, p, rest = sa[-1]
    out += seg(0xDA, p) + rest[:-2]  # YCbCr scan, without EOI
    m, p, rest = sb[-1]
    assert p[0] == 1
    out += seg(0xDA, bytes([1, 4, 0x22]) + p[3:]) + rest
    return out


def pil_jpeg(im, **kw):
    b = io.BytesIO()
    im.save(b, 'JPEG', **kw)
    return b.getvalue()


def add_fill_bytes(j):
    """Inserts legal 0xFF fill bytes before every marker up to SOS (and before EOI)."""
    out = b''
    p = 0
    segs = segments(j)
    out = j[:2]
    for m, payload, rest in segs:
        out += b'\xff\xff\xff' + seg(m, payload)
        if rest is not None:
            out += rest[:-2] + b'\xff\xff' + rest[-2:]
    return out


def build_jpeg():
    W, H = 37, 29
    rows = content(W, H, 900, 3, 255)
    for name, sample in [('444', '1x1'), ('422', '2x1'), ('420', '2x2'), ('440', '1x2'), ('411', '4x1'), ('410', '4x2'),
                         ('mixed', '2x2,2x1,1x2'), ('h3', '3x1'), ('v3h2', '2x3,1x1,1x1')]:
        add(f'jpeg_{name}.jpg', cjpeg(rows, W, H, '-quality', '85', '-sample', sample), f'cjpeg baseline, sampling {sample}')
    base422 = cjpeg(rows, W, H, '-quality', '85', '-sample', '2x1')
    add('jpeg_440_jpegtran.jpg', run(['jpegtran', '-rotate', '90'], base422), '4:2:2 rotated 90° by jpegtran (gives 4:4:0)')
    add('jpeg_440_jpegtran_trim.jpg', run(['jpegtran', '-rotate', '270', '-trim'], base422), '4:2:2 rotated 270° by jpegtran -trim')
    for name, sample in [('420', '2x2'), ('444', '1x1'), ('440', '1x2'), ('422', '2x1'), ('411', '4x1')]:
        add(f'jpeg_progressive_{name}.jpg', cjpeg(rows, W, H, '-quality', '80', '-progressive', '-sample', sample), f'cjpeg progressive, sampling {sample}')
    add('jpeg_progressive_gray.jpg', cjpeg(content(W, H, 901, 1, 255), W, H, '-quality', '80', '-progressive', '-grayscale', channels=1), 'progressive grayscale')
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
        f.write('0,1,2: 0 0 0 1;\n0: 1 63 0 1;\n1: 1 63 0 1;\n2: 1 63 0 1;\n')
        script = f.name
    add('jpeg_progressive_incomplete.jpg', cjpeg(rows, W, H, '-scans', script), 'progressive, last bit of every coefficient never sent (libjpeg smooths the blocks)')
    os.unlink(script)
    add('jpeg_progressive_restart.jpg', cjpeg(rows, W, H, '-progressive', '-restart', '3B', '-sample', '2x2'), 'progressive with restart markers every 3 MCUs')
    add('jpeg_restart_rows.jpg', cjpeg(rows, W, H, '-restart', '1', '-sample', '2x2'), 'restart marker every MCU row')
    add('jpeg_restart_5b.jpg', cjpeg(rows, W, H, '-restart', '5B', '-sample', '1x1'), 'restart marker every 5 MCUs')
    add('jpeg_gray.jpg', cjpeg(content(W, H, 902, 1, 255), W, H, '-quality', '90', '-grayscale', channels=1), 'grayscale')
    add('jpeg_rgb.jpg', cjpeg(rows, W, H, '-rgb', '-quality', '90'), 'RGB JPEG (Adobe transform 0)')
    add('jpeg_optimize.jpg', cjpeg(rows, W, H, '-optimize', '-sample', '2x2'), 'optimised Huffman tables')
    add('jpeg_q100.jpg', cjpeg(rows, W, H, '-quality', '100', '-sample', '1x1'), 'quality 100')
    add('jpeg_q3_sof1.jpg', cjpeg(rows, W, H, '-quality', '3', '-sample', '2x2'), 'quality 3: 16-bit quantisation tables (SOF1)')
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
        f.write('0: 0 63 0 0;\n1: 0 63 0 0;\n2: 0 63 0 0;\n')
        script = f.name
    add('jpeg_multiscan_sequential.jpg', cjpeg(rows, W, H, '-scans', script, '-sample', '2x2'), 'sequential, one scan per component')
    os.unlink(script)
    big = content(40, 33, 903, 3, 255)
    add('jpeg_420_40x33.jpg', cjpeg(big, 40, 33, '-quality', '75', '-sample', '2x2'), '40×33 4:2:0 quality 75')
    for (w, h) in [(1, 1), (2, 3), (7, 5), (17, 9)]:
        add(f'jpeg_420_{w}x{h}.jpg', cjpeg(content(w, h, 904 + w, 3, 255), w, h, '-sample', '2x2'), f'tiny {w}×{h} 4:2:0')
    add('jpeg_422_3x5.jpg', cjpeg(content(3, 5, 910, 3, 255), 3, 5, '-sample', '2x1'), 'tiny 3×5 4:2:2')
    add('jpeg_440_5x3.jpg', cjpeg(content(5, 3, 911, 3, 255), 5, 3, '-sample', '1x2'), 'tiny 5×3 4:4:0')
    # Pillow's encoder (what most users' files look like) and EXIF orientations.
    pim = image_from_rows(content(33, 23, 920, 3, 255), 33, 23, 'RGB')
    add('jpeg_pil_q75.jpg', pil_jpeg(pim), 'Pillow-written, defaults (4:2:0 q75)')
    add('jpeg_pil_progressive.jpg', pil_jpeg(pim, quality=90, progressive=True, subsampling=0), 'Pillow-written progressive 4:4:4')
    add('jpeg_pil_422.jpg', pil_jpeg(pim, quality=92, subsampling=1), 'Pillow-written 4:2:2')
    for o in range(1, 9):
        add(f'jpeg_exif{o}.jpg', pil_jpeg(image_from_rows(content(19, 13, 930 + o, 3, 255), 19, 13, 'RGB'), quality=90, exif=exif_bytes(o)),
            f'EXIF orientation {o}')
    # CMYK (Pillow writes Adobe-inverted CMYK), the same without the Adobe marker, and YCCK.
    cm = content(21, 17, 940, 4, 255)
    cmyk = Image.frombytes('CMYK', (21, 17), bytes(v for row in cm for v in row))
    cj = pil_jpeg(cmyk, quality=90)
    add('jpeg_cmyk.jpg', cj, 'CMYK with Adobe marker (inverted)')
    noadobe = b'\xff\xd8'
    for m, p, rest in segments(cj):
        if m != 0xEE:
            noadobe += seg(m, p)
        if rest is not None:
            noadobe += rest
    add('jpeg_cmyk_noadobe.jpg', noadobe, 'CMYK without an Adobe marker (PIL still inverts)')
    add('jpeg_ycck.jpg', ycck_jpeg(cm, 21, 17, '1x1'), 'YCCK (Adobe transform 2), 4:4:4')
    add('jpeg_ycck_420.jpg', ycck_jpeg(cm, 21, 17, '2x2'), 'YCCK (Adobe transform 2), 4:2:0 with full-size K')
    add('jpeg_fill_bytes.jpg', add_fill_bytes(cjpeg(rows, W, H, '-sample', '2x2')), '0xFF fill bytes before every marker')
    # Arithmetic coding: PIL decodes these, the package refuses them (its test checks the message).
    small = content(19, 13, 950, 3, 255)
    add('jpeg_arithmetic.jpg', cjpeg(small, 19, 13, '-arithmetic'), 'arithmetic-coded sequential (SOF9)')
    add('jpeg_arithmetic_progressive.jpg', cjpeg(small, 19, 13, '-arithmetic', '-progressive'), 'arithmetic-coded progressive (SOF10)')


# ---------------------------------------------------------------- BMP

def bmp_bytes(w, h, bpp, rows, palette=None, header=40, compression=0, masks=None, top_down=False, colors=None, data=None):
    """rows: per row, a list of pixel values (indices for ≤ 8 bits, (r, g, b[, a]) tuples otherwise)."""
    stride = ((w * bpp + 31) // 32) * 4
    if data is None:
        body = bytearray()
        order = range(h) if top_down else range(h - 1, -1, -1)
        for y in order:
            line = bytearray()
            if bpp <= 8:
                acc, n = 0, 0
                for v in rows[y]:
                    acc = (acc << bpp) | v
                    n += bpp
                    if n == 8:
                        line.append(acc)
                        acc, n = 0, 0
                if n:
                    line.append(acc << (8 - n))
            elif bpp == 16:
                for v in rows[y]:
                    line += struct.pack('<H', v)
            elif bpp == 24:
                for r, g, b in rows[y]:
                    line += bytes([b, g, r])
            else:
                for px in rows[y]:
                    word = 0
                    for val, mask in zip(px, masks):
                        if mask:
                            shift = (mask & -mask).bit_length() - 1
                            word |= (val << shift) & mask
                    line += struct.pack('<I', word)
            line += bytes(stride - len(line))
            body += line
        data = bytes(body)
    pal = b''
    if palette is not None:
        pal = b''.join(bytes([b, g, r]) + (b'\0' if header != 12 else b'') for r, g, b in palette)
    extra = b''
    if header == 12:
        info = struct.pack('<IHHHH', 12, w, h, 1, bpp)
    else:
        info = struct.pack('<IiiHHIIiiII', header, w, -h if top_down else h, 1, bpp, compression, len(data), 2835, 2835,
                           colors if colors is not None else (len(palette) if palette else 0), 0)
        if compression == 3 and header == 40:
            extra = struct.pack('<III', *masks[:3])
        elif header > 40:
            tail = bytearray(header - 40)
            if masks:
                tail[0:16] = struct.pack('<IIII', *(list(masks) + [0] * (4 - len(masks))))
            info += bytes(tail)
    offset = 14 + len(info) + len(extra) + len(pal)
    return b'BM' + struct.pack('<IHHI', offset + len(data), 0, 0, offset) + info + extra + pal + data


def rle8(rows, w, h):
    out = bytearray()
    for y in range(h - 1, -1, -1):
        row = rows[y]
        x = 0
        while x < w:
            run = 1
            while x + run < w and run < 255 and row[x + run] == row[x]:
                run += 1
            if run >= 3 or w - x < 3:
                out += bytes([run, row[x]])
                x += run
            else:
                n = min(w - x, 5)
                out += bytes([0, n]) + bytes(row[x:x + n]) + (b'\0' if n % 2 else b'')
                x += n
        out += b'\0\0'
    out += b'\0\1'
    return bytes(out)


def rle4(rows, w, h):
    out = bytearray()
    for y in range(h - 1, -1, -1):
        row = rows[y]
        x = 0
        while x < w:
            if x + 1 < w and row[x] == row[x + 1]:
                run = 2
                while x + run < w and run < 255 and row[x + run] == row[x]:
                    run += 1
                out += bytes([run, (row[x] << 4) | row[x]])
                x += run
            else:
                n = min(w - x, 6)
                if n < 3:
                    a = row[x]
                    b = row[x + 1] if n > 1 else 0
                    out += bytes([n, (a << 4) | b])
                    x += n
                    continue
                vals = row[x:x + n] + ([0] if n % 2 else [])
                packed = bytes((vals[i] << 4) | vals[i + 1] for i in range(0, len(vals), 2))
                out += bytes([0, n]) + packed + (b'\0' if len(packed) % 2 else b'')
                x += n
        out += b'\0\0'
    out += b'\0\1'
    return bytes(out)


def build_bmp():
    def pal(n, seed):
        rnd = random.Random(seed)
        return [(rnd.randrange(256), rnd.randrange(256), rnd.randrange(256)) for _ in range(n)]

    def idx_rows(w, h, n, seed):
        return [[v for v in row] for row in content(w, h, seed, 1, n - 1)]

    def rgb_rows(w, h, seed, ch=3):
        return [[tuple(row[x * ch:(x + 1) * ch]) for x in range(w)] for row in content(w, h, seed, ch, 255)]

    add('bmp_1bit.bmp', bmp_bytes(29, 13, 1, idx_rows(29, 13, 2, 1000), palette=pal(2, 1)), '1-bit, colour palette')
    add('bmp_4bit.bmp', bmp_bytes(23, 15, 4, idx_rows(23, 15, 16, 1001), palette=pal(16, 2)), '4-bit palette')
    add('bmp_8bit.bmp', bmp_bytes(27, 19, 8, idx_rows(27, 19, 256, 1002), palette=pal(256, 3)), '8-bit palette')
    add('bmp_8bit_short_palette.bmp', bmp_bytes(21, 14, 8, idx_rows(21, 14, 256, 1003), palette=pal(20, 4)), '8-bit, 20-entry palette, indices beyond it')
    add('bmp_24bit.bmp', bmp_bytes(25, 17, 24, rgb_rows(25, 17, 1004)), '24-bit, rows padded')
    add('bmp_24bit_topdown.bmp', bmp_bytes(22, 13, 24, rgb_rows(22, 13, 1005), top_down=True), '24-bit top-down')
    add('bmp_32bit.bmp', bmp_bytes(19, 12, 32, rgb_rows(19, 12, 1006, 4), masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)), '32-bit BI_RGB (BGRX)')
    add('bmp_32bit_bitfields_bgra_v5.bmp', bmp_bytes(19, 12, 32, rgb_rows(19, 12, 1007, 4), header=124, compression=3, masks=(0xFF0000, 0xFF00, 0xFF, 0xFF000000)), '32-bit bitfields BGRA, V5 header')
    add('bmp_32bit_bitfields_rgba_v4.bmp', bmp_bytes(19, 12, 32, rgb_rows(19, 12, 1008, 4), header=108, compression=3, masks=(0xFF, 0xFF00, 0xFF0000, 0xFF000000)), '32-bit bitfields RGBA, V4 header')
    add('bmp_32bit_bitfields_xbgr.bmp', bmp_bytes(19, 12, 32, rgb_rows(19, 12, 1009, 3), header=40, compression=3, masks=(0xFF000000, 0xFF0000, 0xFF00)), '32-bit bitfields XBGR, 40-byte header')
    add('bmp_24bit_v5.bmp', bmp_bytes(18, 11, 24, rgb_rows(18, 11, 1010), header=124), '24-bit, V5 header')
    add('bmp_8bit_os2.bmp', bmp_bytes(17, 10, 8, idx_rows(17, 10, 256, 1011), palette=pal(256, 5), header=12), '8-bit, OS/2 12-byte core header')
    add('bmp_24bit_os2.bmp', bmp_bytes(17, 10, 24, rgb_rows(17, 10, 1012), header=12), '24-bit, OS/2 12-byte core header')
    r15 = [[(v >> 3) << 10 | (v >> 3) << 5 | (255 - v) >> 3 for v in row] for row in content(20, 12, 1013, 1, 255)]
    add('bmp_16bit_555.bmp', bmp_bytes(20, 12, 16, r15), '16-bit BI_RGB (5-5-5)')
    r16 = [[(v >> 3) << 11 | (v >> 2) << 5 | (255 - v) >> 3 for v in row] for row in content(20, 12, 1014, 1, 255)]
    add('bmp_16bit_565.bmp', bmp_bytes(20, 12, 16, r16, compression=3, masks=(0xF800, 0x7E0, 0x1F)), '16-bit bitfields 5-6-5')
    i8 = idx_rows(23, 14, 8, 1015)
    add('bmp_rle8.bmp', bmp_bytes(23, 14, 8, i8, palette=pal(8, 6), compression=1, data=rle8(i8, 23, 14)), 'RLE8')
    i4 = idx_rows(23, 14, 16, 1016)
    add('bmp_rle4.bmp', bmp_bytes(23, 14, 4, i4, palette=pal(16, 7), compression=2, data=rle4(i4, 23, 14)), 'RLE4')
    gray = [[v for v in row] for row in content(21, 13, 1017, 1, 255)]
    add('bmp_8bit_gray.bmp', bmp_bytes(21, 13, 8, gray, palette=[(i, i, i) for i in range(256)]), '8-bit with a gray ramp palette (PIL mode L)')
    img = image_from_rows(content(26, 15, 1018, 3, 255), 26, 15, 'RGB')
    b = io.BytesIO()
    img.convert('P', palette=Image.ADAPTIVE, colors=50).save(b, 'BMP')
    add('bmp_pil_p.bmp', b.getvalue(), 'Pillow-written 8-bit P')
    b = io.BytesIO()
    img.convert('1').save(b, 'BMP')
    add('bmp_pil_1.bmp', b.getvalue(), 'Pillow-written mode 1')


# ---------------------------------------------------------------- reference

def reference(name, data):
    im = Image.open(io.BytesIO(data))
    mode = im.mode
    stored = None
    if not name.endswith('.jpg') and mode in ('P', '1', 'L', 'LA', 'I'):
        im.load()
        if mode == '1':
            stored = ('U8', [im.height, im.width], bytes(1 if v else 0 for v in im.getdata()))
        elif mode == 'I':
            stored = ('I32', [im.height, im.width], b''.join(struct.pack('<i', v) for v in im.getdata()))
        elif mode == 'LA':
            stored = ('U8', [im.height, im.width, 2], im.tobytes())
        else:
            stored = ('U8', [im.height, im.width], im.tobytes())
    t = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert('RGB')
    return mode, (t.width, t.height), t.tobytes(), stored


def write_safetensors(path, tensors, metadata):
    header = {'__metadata__': metadata}
    order = sorted(tensors, key=lambda k: (tensors[k][0] != 'I32', k))
    off = 0
    for k in order:
        dtype, shape, data = tensors[k]
        header[k] = {'dtype': dtype, 'shape': shape, 'data_offsets': [off, off + len(data)]}
        off += len(data)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h)
        for k in order:
            f.write(tensors[k][2])


def main():
    assert PIL.__version__ == '9.4.0', PIL.__version__
    build_png()
    build_jpeg()
    build_bmp()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.unlink(os.path.join(OUT, f))
    tensors = {}
    meta = {}
    for name, (data, desc) in sorted(files.items()):
        with open(os.path.join(OUT, name), 'wb') as f:
            f.write(data)
        mode, size, rgb, stored = reference(name, data)
        tensors[name] = ('U8', [size[1], size[0], 3], rgb)
        if stored:
            tensors[name + '#stored'] = stored
        meta[name] = {'description': desc, 'mode': mode, 'size_wh': list(size), 'bytes': len(data)}
    write_safetensors(os.path.join(OUT, 'reference.safetensors'), tensors, {
        'format': 'pt',
        'description': 'PIL.Image.open -> ImageOps.exif_transpose -> convert("RGB") of each file (HWC uint8); '
                       '"<file>#stored": the samples PIL stores for modes P/1/L/LA/I (no transpose)',
        'pillow': PIL.__version__,
        'files': json.dumps(meta),
    })
    total = sum(len(d) for d, _ in files.values()) + os.path.getsize(os.path.join(OUT, 'reference.safetensors'))
    print(f'{len(files)} files, {total} bytes in all', file=sys.stderr)


if __name__ == '__main__':
    main()
