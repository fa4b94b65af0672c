#!/usr/bin/python3
"""Writes the seed corpora of fuzz_zarr3_metadata and fuzz_zarr3_shard with the tests' spec-based
zarr v3 writer (tests/integration/zarr3_ref.py): run from the repository root."""
import json
import os
import re
import sys

import numpy as np

sys.path.insert(0, "tests/integration")
import zarr3_ref as zr  # noqa: E402

LE = {"name": "bytes", "configuration": {"endian": "little"}}


def layouts():
    """The four layouts of fuzz_zarr3_shard.cc, parsed from its source."""
    src = open("fuzz/fuzz_zarr3_shard.cc").read()
    return [json.loads(m) for m in re.findall(r'R"\((\{"codecs".*?)\)"', src)]


def main():
    rng = np.random.default_rng(5)
    out = "fuzz/corpus/fuzz_zarr3_shard"
    os.makedirs(out, exist_ok=True)
    for k, lay in enumerate(layouts()):
        dt = np.dtype(lay["data_type"])
        a = rng.integers(0, 200, (16, 16, 16)).astype(dt)
        a[:8, :8, :8] = 7   # an absent inner chunk (fill 7)
        a[8:, :8, :8] = 0   # a zero-chunk entry
        data = zr.encode_chunk(a, lay["codecs"], 7, zero_entries=True)
        with open(os.path.join(out, "layout%d" % k), "wb") as f:
            f.write(bytes([k]) + data)
    out = "fuzz/corpus/fuzz_zarr3_metadata"
    os.makedirs(out, exist_ok=True)
    cases = {
        "plain_zstd": ([8, 8, 8], [LE, {"name": "zstd", "configuration": {"level": 3}}, {"name": "crc32c"}], "uint16"),
        "transpose_blosc": ([4, 8, 8], [{"name": "transpose", "configuration": {"order": [2, 0, 1]}}, LE,
                                        {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3,
                                                                            "shuffle": "bitshuffle"}}], "float32"),
        "sharded": ([8, 8, 8], layouts()[3]["codecs"], "uint8"),
    }
    for name, (chunks, codecs, dtype) in cases.items():
        a = rng.integers(0, 100, chunks).astype(dtype)
        meta = zr.array_meta([1] + [c * 2 for c in chunks] if name == "sharded" else [c * 2 for c in chunks],
                             np.dtype(dtype), [1] + chunks if name == "sharded" else chunks,
                             codecs if name != "sharded" else [{"name": "sharding_indexed", "configuration": dict(
                                 codecs[0]["configuration"], chunk_shape=[1, 4, 4, 4],
                                 codecs=[LE, {"name": "gzip", "configuration": {"level": 1}}])}],
                             fill=float("nan") if dtype == "float32" else 3)
        chunk = zr.encode_chunk(a if name != "sharded" else a[None], meta["codecs"], 3)
        with open(os.path.join(out, name), "wb") as f:
            f.write(b"\x01" + json.dumps(meta).encode() + b"\0" + (chunk or b""))
    group = {"zarr_format": 3, "node_type": "group",
             "attributes": {"ome": {"version": "0.5", "multiscales": [{"datasets": [{"path": "0"}, {"path": "1"}]}]}}}
    with open(os.path.join(out, "group"), "wb") as f:
        f.write(b"\x00" + json.dumps(group).encode())


if __name__ == "__main__":
    main()
