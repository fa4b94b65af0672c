"""An independent reader of Neuroglancer precomputed volumes, written from Neuroglancer's
published spec (src/datasource/precomputed/volume.md), numpy only, for the integration tests.

  read_info(root)                       the parsed info JSON
  chunk_boxes(scale)                    [(name, (x0, x1), (y0, y1), (z0, z1))] of the scale's grid
  decode_chunk(data, scale, info, box)  a chunk file's bytes -> numpy array (z, y, x), per the
                                        scale's encoding: raw ([x, y, z, channel] Fortran order,
                                        little-endian) or jpeg (decoded by djpeg, libjpeg-turbo's
                                        command line tool: a grayscale image whose concatenated
                                        rows are the Fortran-order voxels)
  read_scale(root, info, i, opener)     the whole scale as (z, y, x), chunk by chunk; absent
                                        chunks (no file) read as 0 and are listed
                                        or compressed_segmentation (decode_compressed_segmentation)
  decode_compressed_segmentation(data, shape_xyz, block_xyz, dtype)
                                        one channel per the format's README (neuroglancer
                                        src/neuroglancer/sliceview/compressed_segmentation/), in
                                        plain Python loops over blocks: (z, y, x) array
A gzip-holding chunk (the file's bytes gzip, served with Content-Encoding: gzip) is unwrapped
by the caller (gunzip=True in read_scale).
"""
import gzip
import json
import os
import shutil
import subprocess

import numpy as np

DTYPES = {"uint8": np.dtype("u1"), "uint16": np.dtype("<u2"), "uint32": np.dtype("<u4"),
          "uint64": np.dtype("<u8"), "float32": np.dtype("<f4")}


def read_info(root):
    with open(os.path.join(root, "info"), "rb") as f:
        return json.loads(f.read())


def chunk_boxes(scale):
    size = scale["size"]
    chunk = scale["chunk_sizes"][0]
    off = scale.get("voxel_offset", [0, 0, 0])
    grid = [-(-size[a] // chunk[a]) for a in range(3)]
    out = []
    for gz in range(grid[2]):
        for gy in range(grid[1]):
            for gx in range(grid[0]):
                g = (gx, gy, gz)
                lo = [off[a] + g[a] * chunk[a] for a in range(3)]
                hi = [off[a] + min((g[a] + 1) * chunk[a], size[a]) for a in range(3)]
                name = "%d-%d_%d-%d_%d-%d" % (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
                out.append((name, (lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2])))
    return out


def djpeg_gray(data):
    """(width, height, pixels uint8) of a JPEG, decoded by djpeg into a binary PGM."""
    exe = shutil.which("djpeg")
    if not exe:
        raise RuntimeError("djpeg is missing (Debian package libjpeg-turbo-progs)")
    r = subprocess.run([exe, "-grayscale", "-pnm"], input=data, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise ValueError("djpeg failed: %s" % r.stderr.decode(errors="replace"))
    pgm = r.stdout
    # P5 <ws> width <ws> height <ws> maxval <one ws> data (no comments from djpeg)
    fields, pos = [], 0
    while len(fields) < 4:
        while pgm[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not pgm[end:end + 1].isspace():
            end += 1
        fields.append(pgm[pos:end])
        pos = end
    pos += 1
    if fields[0] != b"P5" or int(fields[3]) != 255:
        raise ValueError("djpeg did not write an 8-bit PGM: %r" % fields)
    w, h = int(fields[1]), int(fields[2])
    pixels = np.frombuffer(pgm, dtype=np.uint8, count=w * h, offset=pos)
    return w, h, pixels


def decode_chunk(data, scale, info, box):
    _, (x0, x1), (y0, y1), (z0, z1) = box
    nx, ny, nz = x1 - x0, y1 - y0, z1 - z0
    nc = info["num_channels"]
    dtype = DTYPES[info["data_type"]]
    enc = scale["encoding"]
    if enc == "raw":
        want = nx * ny * nz * nc * dtype.itemsize
        if len(data) != want:
            raise ValueError("raw chunk %s: %d bytes, want %d" % (box[0], len(data), want))
        # Fortran order of [x, y, z, c] is C order of (c, z, y, x).
        a = np.frombuffer(data, dtype=dtype).reshape((nc, nz, ny, nx))
    elif enc == "jpeg":
        if dtype != np.uint8:
            raise ValueError("jpeg needs uint8")
        w, h, px = djpeg_gray(data)
        if w * h != nx * ny * nz * nc:
            raise ValueError("jpeg chunk %s: %dx%d pixels for %d voxels" % (box[0], w, h, nx * ny * nz))
        a = px.reshape((nc, nz, ny, nx))
    elif enc == "compressed_segmentation":
        if nc != 1:
            raise ValueError("compressed_segmentation: one channel only here")
        a = decode_compressed_segmentation(data, (nx, ny, nz), scale["compressed_segmentation_block_size"],
                                           dtype)[None]
    else:
        raise ValueError("encoding %r not supported here" % enc)
    return a[0]


def decode_compressed_segmentation(data, shape_xyz, block_xyz, dtype):
    """One channel: uint32 word 0 = offset of the channel's data; there, a 64-bit header per block
    (x fastest over the block grid): lookup table offset (24 bits), encoded bits (8 bits), encoded
    values offset, all offsets in 32-bit words from the channel's start; a block's value at
    (x, y, z) is table[index], index = bits at encodedBits * (x + bx * (y + by * z))."""
    if len(data) % 4:
        raise ValueError("compressed_segmentation: %d bytes is not whole words" % len(data))
    w = np.frombuffer(data, dtype="<u4")
    base = int(w[0])
    nx, ny, nz = shape_xyz
    bx, by, bz = block_xyz
    gx, gy, gz = -(-nx // bx), -(-ny // by), -(-nz // bz)
    per = 2 if np.dtype(dtype).itemsize == 8 else 1
    out = np.zeros((nz, ny, nx), dtype=dtype)
    for kz in range(gz):
        for ky in range(gy):
            for kx in range(gx):
                h = base + 2 * (kx + gx * (ky + gy * kz))
                table, bits, values = int(w[h]) & 0xFFFFFF, int(w[h]) >> 24, int(w[h + 1])
                if bits not in (0, 1, 2, 4, 8, 16, 32):
                    raise ValueError("block %s: encoded bits %d" % ((kx, ky, kz), bits))
                ex, ey, ez = min(bx, nx - kx * bx), min(by, ny - ky * by), min(bz, nz - kz * bz)
                pos = np.arange(bx * by * bz, dtype=np.int64).reshape(bz, by, bx)[:ez, :ey, :ex]
                if bits:
                    bit = pos * bits
                    words = w[base + values + bit // 32].astype(np.int64)
                    idx = (words >> (bit % 32)) & ((1 << bits) - 1)
                else:
                    idx = np.zeros(pos.shape, np.int64)
                at = base + table + idx * per
                v = w[at].astype(np.uint64)
                if per == 2:
                    v |= w[at + 1].astype(np.uint64) << np.uint64(32)
                out[kz * bz:kz * bz + ez, ky * by:ky * by + ey, kx * bx:kx * bx + ex] = v.astype(dtype)
    return out


def default_opener(root):
    def opener(rel):
        try:
            with open(os.path.join(root, rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
    return opener


def read_scale(root, info, i, opener=None, gunzip=False):
    """(array (z, y, x), sorted names of absent chunks, {name: file size})."""
    opener = opener or default_opener(root)
    scale = info["scales"][i]
    sx, sy, sz = scale["size"]
    out = np.zeros((sz, sy, sx), dtype=DTYPES[info["data_type"]])
    absent, sizes = [], {}
    for box in chunk_boxes(scale):
        data = opener(scale["key"] + "/" + box[0])
        if data is None:
            absent.append(box[0])
            continue
        sizes[box[0]] = len(data)
        if gunzip:
            data = gzip.decompress(data)
        _, (x0, x1), (y0, y1), (z0, z1) = box
        out[z0:z1, y0:y1, x0:x1] = decode_chunk(data, scale, info, box)
    return out, sorted(absent), sizes


def psnr(a, b, peak=255.0):
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(d * d))
    return float("inf") if mse == 0 else 10 * np.log10(peak * peak / mse)
