"""Pack the data the GPU check needs into `.devdata/` (ignored by git), small enough to travel with the repo.

The device machine gets only the repository (at most 64 MiB with the carried ignored paths) and has no
network and no ../shared, so this runs here, once, and `.devdata` is carried:

- `MNIST/raw/*.gz`: the four official IDX files, gzipped (torchvision's layout; `gunzip -k` them there);
- `cifar10-sub.zip`: a class-balanced subset of the CIFAR-10 JPEG copy in the same image-folder layout
  (`train/<class>/*.jpg`, `test/<class>/*.jpg`), the first files of each class in name order, copied byte
  for byte and stored uncompressed (JPEGs do not compress);
- `seed_lab1.py`: the lab notebook's pipeline, the speed baseline;
- `manifest.json`: what is there, with counts and sizes.

Gunzipped MNIST files that a local dry run left in `.devdata` are removed (with them it would not travel).

Usage: python bench/make_device_data.py [--shared ../shared] [--out .devdata] [--train-per-class 1000]
       [--test-per-class 200]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
LIMIT_MIB = 30


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def pack_mnist(src: Path, dst: Path) -> int:
    """Gzip the four raw IDX files into dst (torchvision's MNIST/raw layout); returns bytes written."""
    dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for name in MNIST_FILES:
        out = dst / f"{name}.gz"
        with open(src / name, "rb") as fin, gzip.GzipFile(out, "wb", compresslevel=9, mtime=0) as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
        total += out.stat().st_size
        print(f"  {out.relative_to(dst.parents[1])}: {_mib(out.stat().st_size)}", flush=True)
    return total


def pack_cifar_subset(src_zip: Path, dst_zip: Path, train_per_class: int, test_per_class: int) -> dict:
    """The first N JPEGs (name order) of every class of each split, copied byte for byte, ZIP_STORED."""
    per_split = {"train": train_per_class, "test": test_per_class}
    picked: dict[tuple[str, str], list[zipfile.ZipInfo]] = defaultdict(list)
    with zipfile.ZipFile(src_zip) as zin:
        infos = sorted((i for i in zin.infolist() if not i.is_dir() and i.filename.endswith(".jpg")),
                       key=lambda i: i.filename)
        for info in infos:
            parts = info.filename.split("/")
            if len(parts) != 3 or parts[0] not in per_split:
                continue
            chosen = picked[(parts[0], parts[1])]
            if len(chosen) < per_split[parts[0]]:
                chosen.append(info)
        short = {k: len(v) for k, v in picked.items() if len(v) < per_split[k[0]]}
        if short:
            sys.exit(f"make_device_data: too few images in {src_zip} for {short}")
        tmp = dst_zip.with_suffix(".zip.tmp")
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zout:
            for key in sorted(picked):
                for info in picked[key]:
                    zout.writestr(zipfile.ZipInfo(info.filename, date_time=info.date_time), zin.read(info),
                                  compress_type=zipfile.ZIP_STORED)
        tmp.replace(dst_zip)
    counts = {split: sum(len(v) for k, v in picked.items() if k[0] == split) for split in per_split}
    classes = sorted({k[1] for k in picked})
    print(f"  {dst_zip.name}: {counts['train']} train + {counts['test']} test JPEGs, {len(classes)} classes, "
          f"{_mib(dst_zip.stat().st_size)}", flush=True)
    return {"train": counts["train"], "test": counts["test"], "classes": classes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared",
                        help="the shared folder with data/ and bench/seed_lab1.py (default: ../shared)")
    parser.add_argument("--out", type=Path, default=REPO / ".devdata")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    args = parser.parse_args()
    data, out = args.shared / "data", args.out
    sources = [data / "MNIST" / "raw" / f for f in MNIST_FILES] + [
        data / "CIFAR10-JPEG" / "cifar10-jpeg.zip", args.shared / "bench" / "seed_lab1.py"]
    missing = [str(p) for p in sources if not p.is_file()]
    if missing:
        sys.exit(f"make_device_data: missing {', '.join(missing)} (pass --shared)")
    out.mkdir(parents=True, exist_ok=True)
    print(f"writing {out}", flush=True)
    for name in MNIST_FILES:  # gunzipped copies a dry run left: 55 MB that must not travel
        (out / "MNIST" / "raw" / name).unlink(missing_ok=True)
    pack_mnist(data / "MNIST" / "raw", out / "MNIST" / "raw")
    cifar = pack_cifar_subset(data / "CIFAR10-JPEG" / "cifar10-jpeg.zip", out / "cifar10-sub.zip",
                              args.train_per_class, args.test_per_class)
    shutil.copyfile(args.shared / "bench" / "seed_lab1.py", out / "seed_lab1.py")
    print(f"  seed_lab1.py: {_mib((out / 'seed_lab1.py').stat().st_size)}", flush=True)
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    manifest = {"mnist": {"train": 60000, "test": 10000, "files": [f"MNIST/raw/{f}.gz" for f in MNIST_FILES]},
                "cifar10_subset": {"file": "cifar10-sub.zip", **cifar,
                                   "source": "CIFAR10-JPEG/cifar10-jpeg.zip (JPEG quality 75 copy of CIFAR-10)"},
                "sizes": {str(p.relative_to(out)): p.stat().st_size for p in files}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"total {_mib(total)} in {out}", flush=True)
    if total > LIMIT_MIB * 2**20:
        sys.exit(f"make_device_data: {out} is {_mib(total)}, over the {LIMIT_MIB} MiB meant for the device")


if __name__ == "__main__":
    main()
