// Reads every level of an OME-Zarr group (0.4: zarr v2, 0.5: zarr v3, sharded or not) over HTTP
// with zarrita.js, as a web viewer would, and prints one JSON line: the multiscales version, per
// level its path, shape, chunks, dtype and the SHA-256 of the whole array in C order
// (little-endian); plus every HTTP status the server answered.
// usage: node read_levels.mjs URL     (run by tests/integration/test_zarrita.py)
import { createHash } from "node:crypto";
import * as zarr from "zarrita";

const url = process.argv[2];
const statuses = {};
const store = new zarr.FetchStore(url, {
  async fetch(request) {
    const response = await fetch(request);
    statuses[response.status] = (statuses[response.status] ?? 0) + 1;
    return response;
  },
});
const root = zarr.root(store);
const group = await zarr.open(root, { kind: "group" });
const ome = group.attrs.ome;  // OME-Zarr 0.5 keeps its metadata under attributes.ome
const multiscales = ome ? ome.multiscales : group.attrs.multiscales;
const version = ome ? ome.version : multiscales[0].version;
const levels = [];
for (const ds of multiscales[0].datasets) {
  const arr = await zarr.open(root.resolve(ds.path), { kind: "array" });
  const whole = await zarr.get(arr, null);
  const bytes = Buffer.from(whole.data.buffer, whole.data.byteOffset, whole.data.byteLength);
  levels.push({
    path: ds.path,
    shape: arr.shape,
    chunks: arr.chunks,
    dtype: arr.dtype,
    stride: whole.stride,
    sha256: createHash("sha256").update(bytes).digest("hex"),
  });
}
console.log(JSON.stringify({ version, levels, statuses }));
