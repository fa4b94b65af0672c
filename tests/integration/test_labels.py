#!/usr/bin/python3
"""-o labels=NAME:SOURCE: label images under MNT/labels/NAME. Each format's label tree is read
with an independent reader (zarr-python for 0.4, tests/integration/zarr3_ref.py for 0.5,
precomputed_ref.py's spec decoder of compressed_segmentation for precomputed) and compared with a
brute-force numpy mode pyramid (most frequent id of the existing voxels of each 2x2x2 block, ties
to the smallest). Also: the OME-NGFF labels metadata, materialize writes the mount's bytes, and
the refusals (shape, dtype, label_algorithm, names)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oztest as oz  # noqa: E402
import numpy as np  # noqa: E402
import zarr  # noqa: E402
import precomputed_ref as pref  # noqa: E402
import zarr3_ref  # noqa: E402

S = oz.Suite(__file__)
SHAPE = (21, 26, 30)  # z, y, x: odd edges, partial chunks and partial 8^3 blocks
CHUNK, LEVELS = 16, 3


def make_labels(dtype, seed, big=0):
    """Blobs of ids (regions of a coarse random grid) with salt noise, so that 2x2x2 blocks have
    clear winners, ties and several ids."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 6, size=(6, 7, 8))
    ids = np.array([0, 1, 2, 7, 300, 65535], dtype=np.uint64) if big == 0 else \
        np.array([0, 5, big, big + 1, 2 * big, 3 * big], dtype=np.uint64)
    z, y, x = np.indices(SHAPE)
    lab = ids[coarse[z // 4, y // 4, x // 4]]
    noise = rng.random(SHAPE) < 0.08
    lab[noise] = ids[rng.integers(0, len(ids), size=int(noise.sum()))]
    return lab.astype(dtype)


def mode_ref(a):
    """Brute force, one output voxel at a time."""
    out = np.zeros(tuple((n + 1) // 2 for n in a.shape), a.dtype)
    for z, y, x in np.ndindex(*out.shape):
        block = a[2 * z:2 * z + 2, 2 * y:2 * y + 2, 2 * x:2 * x + 2].ravel()
        vals, counts = np.unique(block, return_counts=True)  # ascending: argmax takes the smallest
        out[z, y, x] = vals[int(np.argmax(counts))]
    return out


def mode_pyramid(a, levels=LEVELS):
    out = [a]
    for _ in range(1, levels):
        out.append(mode_ref(out[-1]))
    return out


_FIX = {}


def fixture():
    if _FIX:
        return _FIX
    root = oz.tmpdir("labels")
    img = os.path.join(root, "img")
    _FIX["img_vol"] = oz.make_stack(img, SHAPE, np.uint16, seed=3)
    _FIX["img"] = img
    lab16 = make_labels(np.uint16, 1)
    _FIX["lab16"] = oz.make_stack(os.path.join(root, "lab16"), volume=lab16)
    _FIX["lab16_dir"] = os.path.join(root, "lab16")
    lab32 = make_labels(np.uint32, 2, big=70000)
    _FIX["lab32"] = oz.make_zarr(os.path.join(root, "lab32.zarr"), lab32, (8, 16, 16))
    _FIX["lab32_dir"] = os.path.join(root, "lab32.zarr")
    lab64 = make_labels(np.uint64, 4, big=1 << 40)
    _FIX["lab64"] = oz.make_zarr(os.path.join(root, "lab64.zarr"), lab64, (16, 16, 16))
    _FIX["lab64_dir"] = os.path.join(root, "lab64.zarr")
    flt = np.zeros(SHAPE, np.float32)
    _FIX["f32_dir"] = os.path.join(root, "f32.zarr")
    oz.make_zarr(_FIX["f32_dir"], flt, (16, 16, 16))
    small = os.path.join(root, "small")
    oz.make_stack(small, (SHAPE[0], SHAPE[1], SHAPE[2] - 1), np.uint16, seed=5)
    _FIX["small_dir"] = small
    i16 = os.path.join(root, "i16.zarr")
    oz.make_zarr(i16, lab16.astype(np.int16), (16, 16, 16))
    _FIX["i16_dir"] = i16
    _FIX["pyr16"] = mode_pyramid(_FIX["lab16"])
    sparse = lab16.copy()
    sparse[:, 16:, :] = 0  # level-0 chunk rows y=1 are empty (no files, directories only)
    _FIX["sparse_dir"] = os.path.join(root, "sparse")
    oz.make_stack(_FIX["sparse_dir"], volume=sparse)
    return _FIX


def opts(fmt, *labels, extra=()):
    o = [("chunk", CHUNK), ("levels", LEVELS), ("format", fmt)]
    o += [("labels", "%s:%s" % (n, src)) for n, src in labels]
    return o + list(extra)


def check_multiscales(ms, name):
    oz.check(ms["name"] == name, "multiscales name %r" % ms.get("name"))
    oz.check([d["path"] for d in ms["datasets"]] == [str(level) for level in range(LEVELS)],
             "datasets %s" % ms["datasets"])
    oz.check(ms["type"] == "mode" and ms["metadata"]["options"]["algorithm"] == "mode", "type %r" % ms["type"])
    oz.check([a["name"] for a in ms["axes"]] == ["z", "y", "x"], "axes")


@S.case
def zarr2_labels_group_read_by_zarr_python():
    f = fixture()
    with oz.Mount(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]), ("big", f["lab32_dir"]),
                                 extra=[("algorithm", "mean"), ("compression", "blosc")])) as m:
        oz.check(sorted(os.listdir(m.path)) == [".zattrs", ".zgroup", "0", "1", "2", "labels"],
                 "root: %s" % sorted(os.listdir(m.path)))
        lab = os.path.join(m.path, "labels")
        oz.check(sorted(os.listdir(lab)) == [".zattrs", ".zgroup", "big", "cells"], "labels/: %s" % os.listdir(lab))
        oz.check(oz.read_json(os.path.join(lab, ".zattrs")) == {"labels": ["cells", "big"]}, "labels/.zattrs")
        for name, want_pyr, dt in (("cells", f["pyr16"], np.uint16),
                                   ("big", mode_pyramid(f["lab32"]), np.uint32)):
            za = oz.read_json(os.path.join(lab, name, ".zattrs"))
            oz.check(za["image-label"] == {"version": "0.4", "source": {"image": "../../"}},
                     "%s image-label %s" % (name, za["image-label"]))
            oz.check("colors" not in za["image-label"], "no colors")
            ms = za["multiscales"][0]
            oz.check(ms["version"] == "0.4", "version")
            check_multiscales(ms, name)
            # zarr-python opens the group the OME-NGFF way: image -> labels -> label image -> level.
            g = zarr.open_group(store=oz.StrictDirectoryStore(m.path), mode="r")
            labels_grp = g["labels"]
            oz.check(list(labels_grp.attrs["labels"]) == ["cells", "big"], "zarr attrs labels")
            limg = labels_grp[name]
            for level in range(LEVELS):
                arr = limg[str(level)]
                oz.check(arr.chunks == (CHUNK,) * 3, "chunks %s" % (arr.chunks,))
                oz.assert_array_equal(arr[...], want_pyr[level].astype(dt), "%s level %d vs numpy mode" % (name, level))
        # The image is unchanged by the labels: mean pyramid of the image volume.
        want_img = oz.reference_pyramid(f["img_vol"], LEVELS, "mean")
        for level in range(LEVELS):
            oz.assert_array_equal(oz.read_level(m.path, level, LEVELS), want_img[level], "image level %d" % level)


@S.case
def zarr2_labels_with_levels_1_are_still_groups():
    f = fixture()
    with oz.Mount(f["img"], [("chunk", CHUNK), ("levels", 1), ("labels", "cells:" + f["lab16_dir"])]) as m:
        lab = os.path.join(m.path, "labels", "cells")
        oz.check(sorted(os.listdir(lab)) == [".zattrs", ".zgroup", "0"], "labels/cells: %s" % os.listdir(lab))
        oz.assert_array_equal(oz.read_level(lab, 0, 2), f["lab16"], "level 0")


@S.case
def zarr3_labels_read_by_spec_reader():
    f = fixture()
    with oz.Mount(f["img"], opts("ome-zarr-0.5", ("cells", f["lab16_dir"]), ("huge", f["lab64_dir"]),
                                 extra=[("shard", 2), ("compression", "gzip")])) as m:
        lab = os.path.join(m.path, "labels")
        g = zarr3_ref.read_meta(lab)
        oz.check(g["node_type"] == "group" and g["attributes"]["ome"] == {"version": "0.5", "labels": ["cells", "huge"]},
                 "labels/zarr.json: %s" % g)
        for name, want_pyr in (("cells", f["pyr16"]), ("huge", mode_pyramid(f["lab64"]))):
            meta = zarr3_ref.read_meta(os.path.join(lab, name))
            ome = meta["attributes"]["ome"]
            oz.check(meta["node_type"] == "group" and ome["version"] == "0.5", "group %s" % name)
            oz.check(ome["image-label"] == {"source": {"image": "../../"}}, "image-label %s" % ome["image-label"])
            check_multiscales(ome["multiscales"][0], name)
            for level in range(LEVELS):
                got = zarr3_ref.read_array(os.path.join(lab, name, str(level)))
                oz.assert_array_equal(got, want_pyr[level], "%s level %d vs numpy mode" % (name, level))


@S.case
def precomputed_segmentation_compressed_segmentation():
    f = fixture()
    with oz.Mount(f["img"], opts("precomputed", ("cells", f["lab16_dir"]), ("big", f["lab32_dir"]),
                                 ("huge", f["lab64_dir"]))) as m:
        oz.check(sorted(os.listdir(os.path.join(m.path, "labels"))) == ["big", "cells", "huge"], "labels/")
        for name, want_pyr, dt in (("cells", f["pyr16"], "uint32"), ("big", mode_pyramid(f["lab32"]), "uint32"),
                                   ("huge", mode_pyramid(f["lab64"]), "uint64")):
            root = os.path.join(m.path, "labels", name)
            info = pref.read_info(root)
            oz.check(info["type"] == "segmentation" and info["data_type"] == dt, "%s info type/data_type" % name)
            oz.check(info["@type"] == "neuroglancer_multiscale_volume", "@type")
            for i, sc in enumerate(info["scales"]):
                oz.check(sc["encoding"] == "compressed_segmentation", "encoding %s" % sc["encoding"])
                oz.check(sc["compressed_segmentation_block_size"] == [8, 8, 8], "block size")
                got, absent, sizes = pref.read_scale(root, info, i)
                oz.check(not absent, "%s scale %d: absent chunks %s" % (name, i, absent))
                for n, size in sizes.items():
                    oz.check(os.stat(os.path.join(root, sc["key"], n)).st_size == size, "stat size = read size")
                oz.assert_array_equal(got, want_pyr[i].astype(dt), "%s scale %d vs numpy mode" % (name, i))
        # Sizes are small: ids in blobs compress far below raw uint32.
        root = os.path.join(m.path, "labels", "cells")
        raw = sum(os.path.getsize(os.path.join(root, "0", n)) for n in os.listdir(os.path.join(root, "0")))
        oz.check(raw < SHAPE[0] * SHAPE[1] * SHAPE[2] * 4, "compressed_segmentation smaller than raw uint32")


@S.case
def window_and_bytes1_do_not_touch_label_ids():
    f = fixture()
    # The image windowed to x 0:30, y 0:26, z 0:21 (its whole shape) with bytes=1: ids unchanged.
    with oz.Mount(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]),
                                 extra=[("bytes", 1), ("window", oz.window_opt([(0, 21), (0, 26), (0, 30)]))])) as m:
        oz.assert_array_equal(oz.read_level(os.path.join(m.path, "labels", "cells"), 0, LEVELS), f["lab16"],
                              "label level 0 with bytes=1 on the image")
        oz.check(oz.read_level(m.path, 0, LEVELS).dtype == np.uint8, "image served as uint8")


@S.case
def materialize_writes_the_mount_bytes():
    f = fixture()
    for fmt in ("ome-zarr-0.4", "ome-zarr-0.5", "precomputed"):
        o = opts(fmt, ("cells", f["lab16_dir"]), ("big", f["lab32_dir"]), ("sparse", f["sparse_dir"]))
        dest = os.path.join(oz.tmpdir("dest"), "out")
        oz.materialize(f["img"], dest, o)
        with oz.Mount(f["img"], o) as m:
            diff = oz.tree_diff(m.path, dest)
            oz.check(not diff, "%s: materialized tree differs from the mount: %s" % (fmt, diff[:10]))
            oz.check(os.path.isdir(os.path.join(dest, "labels", "big")), "labels written")
            if fmt == "ome-zarr-0.4":
                row = os.path.join(m.path, "labels", "sparse", "0", "0", "1")
                oz.check(os.path.isdir(row) and not os.listdir(row), "an empty chunk row in the mount")


def refused(src, o, *needles):
    rc, err, mounted = oz.try_mount(src, o)
    oz.check(rc != 0 and not mounted, "mount with %s should fail" % (o,))
    for n in needles:
        oz.check(n in err, "message lacks %r: %s" % (n, err.strip()[-500:]))


@S.case
def refusals_name_the_option_and_the_fix():
    f = fixture()
    # Shape: both shapes named.
    refused(f["img"], opts("ome-zarr-0.4", ("cells", f["small_dir"])), "labels=cells:",
            "(21, 26, 29)", "(21, 26, 30)")
    # The image windowed: the label must match the windowed shape.
    refused(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]),
                           extra=[("window", oz.window_opt([(0, 10), (0, 26), (0, 30)]))]), "(10, 26, 30)",
            "(21, 26, 30)")
    refused(f["img"], opts("ome-zarr-0.4", ("f", f["f32_dir"])), "labels=f:", "float32", "integer")
    refused(f["img"], opts("precomputed", ("s", f["i16_dir"])), "int16", "unsigned")
    refused(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]), extra=[("label_algorithm", "mean")]),
            "label_algorithm=mean", "always downsampled with mode")
    refused(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]), extra=[("label_algorithm", "median")]),
            "expected one of mean, nearest, max, min, mode")
    refused(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]), ("cells", f["lab32_dir"])), "given twice")
    refused(f["img"], opts("ome-zarr-0.4", ("a/b", f["lab16_dir"])), "one path component")
    refused(f["img"], [("labels", "cells")], "':' is missing")
    refused(f["img"], opts("ome-zarr-0.4", ("cells", "/nonexistent/labels")), "labels=cells:", "/nonexistent/labels")
    refused(f["img"], opts("precomputed", ("cells", f["lab16_dir"]), extra=[("chunk", 256)]), "chunk=256",
            "128")
    # The mean image with mode labels is fine (labels are always mode).
    with oz.Mount(f["img"], opts("ome-zarr-0.4", ("cells", f["lab16_dir"]), extra=[("label_algorithm", "mode")])):
        pass


if __name__ == "__main__":
    sys.exit(S.main())
