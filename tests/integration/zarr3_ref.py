"""An independent zarr v3 reader written from the specs (zarr v3 core: zarr.json, regular chunk
grid, default and v2 chunk key encodings; codecs bytes, transpose, blosc, gzip, zstd,
crc32c; sharding_indexed with the index at the start or the end), with numpy and numcodecs only.
It shares no code with omezarrfs: tests compare what the mount serves against what this decodes.

read_array(root) -> numpy array; shard_report(root) -> facts about every shard file (index
entries, crc checked), for tests that check the layout itself."""
import gzip
import json
import os
import struct

import numpy as np
import numcodecs

ABSENT = 2 ** 64 - 1


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = (c >> 8) ^ _T[(c ^ b) & 0xFF]
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


class SpecError(AssertionError):
    pass


def _check(cond, msg):
    if not cond:
        raise SpecError(msg)


def _dtype(name):
    table = {"uint8": "u1", "uint16": "u2", "uint32": "u4", "uint64": "u8", "int8": "i1", "int16": "i2",
             "int32": "i4", "int64": "i8", "float32": "f4", "float64": "f8"}
    _check(name in table, "data_type %r" % name)
    return np.dtype(table[name])


def decode_chunk(data, codecs, shape, dtype):
    """Decodes one chunk's bytes through the codec chain (applied in reverse)."""
    # array -> array codecs before "bytes", bytes -> bytes after it.
    names = [c["name"] for c in codecs]
    _check(names.count("bytes") + names.count("sharding_indexed") == 1,
           "exactly one array->bytes codec expected: %r" % names)
    ab = next(i for i, c in enumerate(codecs) if c["name"] in ("bytes", "sharding_indexed"))
    for c in reversed(codecs[ab + 1:]):
        cfg = c.get("configuration", {})
        if c["name"] == "blosc":
            _check(cfg["shuffle"] in ("noshuffle", "shuffle", "bitshuffle"), "blosc shuffle %r" % cfg)
            data = numcodecs.Blosc().decode(data)
        elif c["name"] == "gzip":
            _check(data[:2] == b"\x1f\x8b", "gzip codec: not a gzip stream")
            data = gzip.decompress(data)
        elif c["name"] == "zstd":
            data = numcodecs.Zstd().decode(data)
        elif c["name"] == "crc32c":
            _check(len(data) >= 4, "crc32c: short")
            body, crc = data[:-4], struct.unpack("<I", data[-4:])[0]
            _check(crc32c(body) == crc, "crc32c mismatch")
            data = body
        else:
            raise SpecError("codec %r not supported by this reader" % c["name"])
    abc = codecs[ab]
    if abc["name"] == "sharding_indexed":
        arr = decode_shard(data, abc["configuration"], shape, dtype)
    else:
        endian = abc.get("configuration", {}).get("endian", "little")
        _check(endian in ("little", "big"), "endian %r" % endian)
        dt = dtype.newbyteorder("<" if endian == "little" else ">")
        n = int(np.prod(shape))
        _check(len(data) == n * dt.itemsize, "chunk is %d bytes, want %d" % (len(data), n * dt.itemsize))
        # The bytes hold the array after the transposes: its shape is permuted by each order.
        enc_shape = list(shape)
        for c in codecs[:ab]:
            enc_shape = [enc_shape[i] for i in c["configuration"]["order"]]
        arr = np.frombuffer(data, dt).astype(dtype).reshape(enc_shape)
    for c in reversed(codecs[:ab]):
        _check(c["name"] == "transpose", "array->array codec %r" % c["name"])
        order = c["configuration"]["order"]
        arr = np.transpose(arr, np.argsort(order))
    return arr


def parse_index(data, cfg, n_inner):
    """(entries [(offset, nbytes)], index byte range) of a shard."""
    isize = 16 * n_inner + (4 if any(c["name"] == "crc32c" for c in cfg["index_codecs"]) else 0)
    _check(len(data) >= isize, "shard shorter than its index")
    loc = cfg.get("index_location", "end")
    raw = data[-isize:] if loc == "end" else data[:isize]
    for c in reversed(cfg["index_codecs"]):
        if c["name"] == "crc32c":
            body, crc = raw[:-4], struct.unpack("<I", raw[-4:])[0]
            _check(crc32c(body) == crc, "shard index crc32c mismatch")
            raw = body
        else:
            _check(c["name"] == "bytes" and c.get("configuration", {}).get("endian", "little") == "little",
                   "index codec %r" % c)
    vals = struct.unpack("<%dQ" % (2 * n_inner), raw)
    entries = [(vals[2 * i], vals[2 * i + 1]) for i in range(n_inner)]
    return entries, ((len(data) - isize, len(data)) if loc == "end" else (0, isize))


def decode_shard(data, cfg, shape, dtype):
    inner = cfg["chunk_shape"]
    grid = [s // c for s, c in zip(shape, inner)]
    _check([g * c for g, c in zip(grid, inner)] == list(shape), "shard shape not a multiple of chunk_shape")
    n = int(np.prod(grid))
    entries, (i0, i1) = parse_index(data, cfg, n)
    out = np.zeros(shape, dtype)
    for i, (off, nb) in enumerate(entries):
        if off == ABSENT and nb == ABSENT:
            continue
        _check(off + nb <= len(data) and (off + nb <= i0 or off >= i1), "entry %d overlaps the index or end" % i)
        idx = np.unravel_index(i, grid)
        sl = tuple(slice(k * c, (k + 1) * c) for k, c in zip(idx, inner))
        out[sl] = decode_chunk(data[off:off + nb], cfg["codecs"], inner, dtype)
    return out


def chunk_key(meta, idx):
    enc = meta["chunk_key_encoding"]
    sep = enc.get("configuration", {}).get("separator", "/" if enc["name"] == "default" else ".")
    if enc["name"] == "default":
        return "c" + sep + sep.join(str(i) for i in idx) if idx else "c"
    _check(enc["name"] == "v2", "chunk_key_encoding %r" % enc)
    return sep.join(str(i) for i in idx) if idx else "0"


def read_meta(root):
    with open(os.path.join(root, "zarr.json")) as f:
        meta = json.load(f)
    _check(meta.get("zarr_format") == 3, "zarr_format %r" % meta.get("zarr_format"))
    return meta


def read_array(root):
    meta = read_meta(root)
    _check(meta["node_type"] == "array", "node_type %r" % meta["node_type"])
    dtype = _dtype(meta["data_type"])
    shape = meta["shape"]
    _check(meta["chunk_grid"]["name"] == "regular", "chunk_grid %r" % meta["chunk_grid"])
    cs = meta["chunk_grid"]["configuration"]["chunk_shape"]
    grid = [-(-s // c) for s, c in zip(shape, cs)]
    out = np.full([g * c for g, c in zip(grid, cs)], meta["fill_value"], dtype)
    for idx in np.ndindex(*grid):
        p = os.path.join(root, chunk_key(meta, idx))
        if not os.path.exists(p):
            continue
        with open(p, "rb") as f:
            data = f.read()
        sl = tuple(slice(k * c, (k + 1) * c) for k, c in zip(idx, cs))
        out[sl] = decode_chunk(data, meta["codecs"], cs, dtype)
    return out[tuple(slice(0, s) for s in shape)]


def shard_report(root):
    """For a sharded array: per existing shard file (key, file size, entries, data bytes)."""
    meta = read_meta(root)
    cs = meta["chunk_grid"]["configuration"]["chunk_shape"]
    _check(meta["codecs"][0]["name"] == "sharding_indexed", "not sharded")
    cfg = meta["codecs"][0]["configuration"]
    n_inner = int(np.prod([s // c for s, c in zip(cs, cfg["chunk_shape"])]))
    grid = [-(-s // c) for s, c in zip(meta["shape"], cs)]
    out = []
    for idx in np.ndindex(*grid):
        p = os.path.join(root, chunk_key(meta, idx))
        if not os.path.exists(p):
            out.append((idx, None, None))
            continue
        with open(p, "rb") as f:
            data = f.read()
        entries, _ = parse_index(data, cfg, n_inner)
        out.append((idx, len(data), entries))
    return out


# -- a spec-based writer ------------------------------------------------------------------------
# write_array(root, arr, chunks, codecs, ...) writes a zarr v3 array from numpy, encoding every
# chunk from the codec specs with numpy, gzip and numcodecs only (no omezarrfs code): the stores
# the v3 source tests read. `codecs` is the zarr.json codec list; sharding_indexed (nested too) and
# its index_location / index_codecs are honoured. zero_entries=True writes all-zero inner chunks as
# the Vesuvius "zero chunk" entry (offset 2^64-2, nbytes 0) instead of leaving them out.

ZERO_CHUNK = 2 ** 64 - 2


def _dtype_name(dt):
    return {"u1": "uint8", "u2": "uint16", "u4": "uint32", "u8": "uint64", "i2": "int16",
            "f4": "float32", "f8": "float64", "i4": "int32", "i1": "int8"}[np.dtype(dt).str[1:]]


def _all_fill(part, fill):
    if isinstance(fill, float) and np.isnan(fill):
        return bool(np.all(np.isnan(part)))
    return bool(np.all(part == fill))


def encode_chunk(arr, codecs, fill, zero_entries=False):
    """One chunk (a numpy array of the chunk's shape) -> its bytes through `codecs`; None when the
    chunk should be left out (only for sharded inner chunks all equal to fill)."""
    names = [c["name"] for c in codecs]
    ab = next(i for i, n in enumerate(names) if n in ("bytes", "sharding_indexed"))
    for c in codecs[:ab]:
        _check(c["name"] == "transpose", "array->array codec %r" % c["name"])
        arr = np.transpose(arr, c["configuration"]["order"])
    abc = codecs[ab]
    if abc["name"] == "bytes":
        endian = abc.get("configuration", {}).get("endian", "little")
        data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<" if endian == "little" else ">")).tobytes()
    else:
        data = encode_shard(arr, abc["configuration"], fill, zero_entries)
    for c in codecs[ab + 1:]:
        cfg = c.get("configuration", {})
        if c["name"] == "blosc":
            shuffle = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}[cfg.get("shuffle", "shuffle")]
            data = numcodecs.Blosc(cname=cfg.get("cname", "lz4"), clevel=cfg.get("clevel", 5), shuffle=shuffle,
                                   blocksize=cfg.get("blocksize", 0)).encode(data)
        elif c["name"] == "gzip":
            data = gzip.compress(data, cfg.get("level", 5), mtime=0)
        elif c["name"] == "zstd":
            data = numcodecs.Zstd(level=cfg.get("level", 3)).encode(data)
        elif c["name"] == "crc32c":
            data = data + struct.pack("<I", crc32c(data))
        else:
            raise SpecError("writer: codec %r" % c["name"])
    return bytes(data)


def encode_shard(arr, cfg, fill, zero_entries=False):
    inner = cfg["chunk_shape"]
    grid = [s // c for s, c in zip(arr.shape, inner)]
    n = int(np.prod(grid))
    crc = [c["name"] for c in cfg["index_codecs"]] == ["bytes", "crc32c"]
    _check(crc or [c["name"] for c in cfg["index_codecs"]] == ["bytes"], "index codecs %r" % cfg["index_codecs"])
    isize = 16 * n + (4 if crc else 0)
    start = cfg.get("index_location", "end") == "start"
    body, entries = b"", []
    base = isize if start else 0
    for i in range(n):
        idx = np.unravel_index(i, grid)
        sl = tuple(slice(k * c, (k + 1) * c) for k, c in zip(idx, inner))
        part = arr[sl]
        if zero_entries and np.all(part == 0):
            entries.append((ZERO_CHUNK, 0))
            continue
        if _all_fill(part, fill):
            entries.append((ABSENT, ABSENT))
            continue
        enc = encode_chunk(part, cfg["codecs"], fill, zero_entries)
        entries.append((base + len(body), len(enc)))
        body += enc
    if all(e == (ABSENT, ABSENT) for e in entries):
        return None
    index = b"".join(struct.pack("<QQ", o, b) for o, b in entries)
    if crc:
        index += struct.pack("<I", crc32c(index))
    return index + body if start else body + index


def _json_fill(fill, dtype):
    if np.dtype(dtype).kind == "f":
        if np.isnan(fill):
            return "NaN"
        if np.isinf(fill):
            return "Infinity" if fill > 0 else "-Infinity"
        return float(fill)
    return int(fill)


def array_meta(shape, dtype, chunks, codecs, fill=0, key_encoding=("default", "/"), extra=None):
    name, sep = key_encoding
    meta = {"zarr_format": 3, "node_type": "array", "shape": list(shape), "data_type": _dtype_name(dtype),
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "chunk_key_encoding": {"name": name, "configuration": {"separator": sep}},
            "fill_value": _json_fill(fill, dtype), "codecs": codecs, "attributes": {}}
    meta.update(extra or {})
    return meta


def write_array(root, arr, chunks, codecs, fill=0, key_encoding=("default", "/"), zero_entries=False,
                write_empty=False):
    """Writes arr as a zarr v3 array at root (a directory). Chunks equal to fill are left out
    unless write_empty. Returns the metadata."""
    os.makedirs(root, exist_ok=True)
    meta = array_meta(arr.shape, arr.dtype, chunks, codecs, fill, key_encoding)
    with open(os.path.join(root, "zarr.json"), "w") as f:
        json.dump(meta, f, indent=2)
    grid = [-(-s // c) for s, c in zip(arr.shape, chunks)]
    for idx in np.ndindex(*grid):
        sl = tuple(slice(k * c, min((k + 1) * c, s)) for k, c, s in zip(idx, chunks, arr.shape))
        part = np.full(chunks, fill, arr.dtype)
        part[tuple(slice(0, x.stop - x.start) for x in sl)] = arr[sl]
        if not write_empty and _all_fill(part, fill):
            continue
        data = encode_chunk(part, codecs, fill, zero_entries)
        if data is None:
            continue
        p = os.path.join(root, chunk_key(meta, idx))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    return meta


def write_ome_group(root, levels, chunks, codecs, fill=0, **kw):
    """An OME-Zarr 0.5 group: levels[i] (numpy arrays, full resolution first) as arrays "0", "1"..."""
    os.makedirs(root, exist_ok=True)
    axes = [{"name": n, "type": "space"} for n in "zyx"[-levels[0].ndim:]]
    datasets = [{"path": str(i), "coordinateTransformations": [{"type": "scale", "scale": [2.0 ** i] * levels[0].ndim}]}
                for i in range(len(levels))]
    group = {"zarr_format": 3, "node_type": "group",
             "attributes": {"ome": {"version": "0.5", "multiscales": [{"name": "ref", "axes": axes,
                                                                        "datasets": datasets}]}}}
    with open(os.path.join(root, "zarr.json"), "w") as f:
        json.dump(group, f, indent=2)
    for i, a in enumerate(levels):
        write_array(os.path.join(root, str(i)), a, chunks, codecs, fill, **kw)
