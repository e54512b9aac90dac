"""`.difypkg` files: a plugin folder as one zip, the way `dify plugin package` writes it.

The daemon's packager (pkg/plugin_packager/packager) stores every file the folder walk
keeps (`.difyignore`, or else `.gitignore`, leaves some out) under its path relative to
the plugin folder, with `/` separators, files only. Marketplace packages add a signature
in the zip comment and may carry `.verification.dify.json`; both are read as they come.
The daemon extracts a package file by file into its working folder, and refuses entries
that would land outside it.
"""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from emulator.runtime.plugin import PluginLoadError

PACKAGE_SUFFIX = ".difypkg"

# Held here, not by whoever loaded the plugin: a folder goes when its object is collected,
# and the plugin still runs from it. What is left is removed at exit.
_unpacked: list[tempfile.TemporaryDirectory[str]] = []


def is_package(path: Path) -> bool:
    """Whether ``path`` names a package file rather than a plugin folder."""
    return path.suffix == PACKAGE_SUFFIX and path.is_file()


def unpack(package: Path) -> tempfile.TemporaryDirectory[str]:
    """Extract ``package`` into a new private folder, kept until :func:`remove` or exit.

    Raise PluginLoadError where the daemon could not read the package.
    """
    try:
        archive = zipfile.ZipFile(package)
    except (OSError, zipfile.BadZipFile) as error:
        raise PluginLoadError(f"cannot load plugin from {package}: {error}") from error
    with archive:
        names = _member_names(package, archive)
        folder = tempfile.TemporaryDirectory(prefix=f"emulator-{package.stem}-")
        try:
            for name in names:
                target = Path(folder.name, *PurePosixPath(name).parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
        except (OSError, zipfile.BadZipFile) as error:
            folder.cleanup()
            raise PluginLoadError(f"cannot load plugin from {package}: {error}") from error
    _unpacked.append(folder)
    return folder


def remove(folder: tempfile.TemporaryDirectory[str]) -> None:
    """Remove a folder :func:`unpack` made."""
    if folder in _unpacked:
        _unpacked.remove(folder)
    folder.cleanup()


def _member_names(package: Path, archive: zipfile.ZipFile) -> list[str]:
    names = []
    for info in archive.infolist():
        if info.is_dir():
            # The daemon reads every entry as a file; a folder entry fails its checksum.
            raise PluginLoadError(
                f"cannot load plugin from {package}: it holds the folder entry"
                f" {info.filename!r}, and the daemon fails to read a package with folder"
                f" entries (read {info.filename.rstrip('/')}: is a directory); package the"
                " plugin with `dify plugin package`, which stores files only"
            )
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts:
            raise PluginLoadError(
                f"cannot load plugin from {package}: illegal file path in plugin package:"
                f" {info.filename!r}"
            )
        names.append(info.filename)
    if "manifest.yaml" not in names:
        raise PluginLoadError(
            f"cannot load plugin from {package}: no manifest.yaml at the top of the package"
            " (the daemon reads it there; zip the folder's contents, not the folder)"
        )
    return names
