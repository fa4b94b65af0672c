// Writes a zarr v3 array with zarrita.js (its own encoder: zarrita 0.7.5 encodes `bytes` and
// `transpose`; gzip, crc32c and sharding are read-only there), from a raw little-endian C-order
// file, for tests/integration/test_zarr3_source.py.
// usage: node write_v3.mjs DIR RAW DTYPE Z,Y,X CZ,CY,CX ENDIAN [ORDER]
//   ORDER (e.g. 2,0,1) adds a transpose codec before bytes.
import { readFileSync } from "node:fs";
import FileSystemStore from "@zarrita/storage/fs";
import * as zarr from "zarrita";

const [dir, raw, dtype, shapeText, chunkText, endian, order] = process.argv.slice(2);
const shape = shapeText.split(",").map(Number);
const chunkShape = chunkText.split(",").map(Number);
const Typed = { uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array, int16: Int16Array,
                float32: Float32Array }[dtype];
const buf = readFileSync(raw);
const data = new Typed(buf.buffer, buf.byteOffset, buf.byteLength / Typed.BYTES_PER_ELEMENT);
const codecs = [];
if (order) codecs.push({ name: "transpose", configuration: { order: order.split(",").map(Number) } });
codecs.push({ name: "bytes", configuration: { endian } });
const store = new FileSystemStore(dir);
const arr = await zarr.create(zarr.root(store), { shape, chunkShape, dtype, codecs, fillValue: 0 });
const stride = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
await zarr.set(arr, null, { data, shape, stride });
