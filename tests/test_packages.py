""".difypkg packages: a zipped plugin folder is served exactly as the folder is."""

from __future__ import annotations

import gc
import json
import re
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from emulator.config import EXAMPLE_PLUGIN, RuntimeChoice, Settings, plugin_directories
from emulator.runtime import PluginLoadError
from emulator.runtime.packages import unpack
from emulator.runtime.registry import PluginSet
from emulator.server.app import create_app
from helpers import KEY, dispatch_headers, dispatch_url, payload

ROUTES = ["llm/invoke", "llm/num_tokens", "text_embedding/invoke", "rerank/invoke", "model/schema"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pack(folder: Path, package: Path) -> Path:
    """Zip the folder's files as `dify plugin package` does: relative paths, files only."""
    with zipfile.ZipFile(package, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path, path.relative_to(folder).as_posix())
    return package


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pack(EXAMPLE_PLUGIN, tmp_path_factory.mktemp("packages") / "echo.difypkg")


@pytest.fixture(scope="module")
def served_package(package: Path) -> Iterator[PluginSet]:
    plugins = PluginSet.load([package])
    yield plugins
    plugins.close()


@pytest.fixture(scope="module")
def served_folder() -> Iterator[PluginSet]:
    plugins = PluginSet.load([EXAMPLE_PLUGIN])
    yield plugins
    plugins.close()


def answers(plugins: PluginSet) -> dict[str, str]:
    """Each route's answer, session ids masked (the example plugin echoes its own)."""
    with TestClient(create_app(Settings(key=KEY), plugins)) as client:
        health = client.get("/health/check").text
        sent = {
            route: client.post(
                dispatch_url(route),
                content=json.dumps(payload(route, with_app_id=True)),
                headers=dispatch_headers(),
            )
            for route in ROUTES
        }
    found = {route: f"{r.status_code} {UUID.sub('<id>', r.text)}" for route, r in sent.items()}
    return {"health": health, **found}


def test_a_package_is_served_exactly_as_its_folder(
    served_package: PluginSet, served_folder: PluginSet
) -> None:
    (from_package,) = served_package
    (from_folder,) = served_folder

    assert from_package.identity == from_folder.identity
    assert from_package.directory != from_folder.directory
    from_package_answers = answers(served_package)
    assert from_package_answers == answers(served_folder)
    assert from_folder.identity.unique_identifier in from_package_answers["health"]
    assert all(from_package_answers[route].startswith("200 data: ") for route in ROUTES)


def test_the_unpacked_folder_is_private_and_removed_on_close(package: Path) -> None:
    plugins = PluginSet.load([package])
    (plugin,) = plugins
    unpacked = plugin.directory

    assert unpacked.is_dir() and not unpacked.is_relative_to(package.parent)
    assert (unpacked / "manifest.yaml").read_bytes() == (
        EXAMPLE_PLUGIN / "manifest.yaml"
    ).read_bytes()
    plugins.close()
    assert not unpacked.exists()


def test_the_unpacked_folder_outlives_the_plugin_set_that_loaded_it(package: Path) -> None:
    (plugin,) = PluginSet.load([package])  # as the pytest fixtures load one plugin
    gc.collect()

    assert (plugin.directory / "manifest.yaml").is_file()


def test_a_folder_of_plugins_serves_the_packages_in_it(package: Path, tmp_path: Path) -> None:
    (tmp_path / "echo.difypkg").write_bytes(package.read_bytes())
    (tmp_path / "notes.txt").write_text("not a plugin")

    assert plugin_directories([tmp_path]) == (tmp_path / "echo.difypkg",)


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        ({"manifest.yaml": "x", "models/": ""}, "folder entry 'models/'"),
        ({"echo/manifest.yaml": "x"}, "no manifest.yaml at the top of the package"),
        ({"manifest.yaml": "x", "../evil.py": ""}, "illegal file path in plugin package"),
        ({"manifest.yaml": "x", "/etc/evil": ""}, "illegal file path in plugin package"),
    ],
    ids=["folder-entry", "nested-manifest", "parent-path", "absolute-path"],
)
def test_a_package_the_daemon_could_not_read_is_a_load_error(
    tmp_path: Path, entries: dict[str, str], expected: str
) -> None:
    package = tmp_path / "bad.difypkg"
    with zipfile.ZipFile(package, "w") as archive:
        for name, content in entries.items():
            archive.writestr(name, content)

    with pytest.raises(PluginLoadError, match=re.escape(expected)):
        unpack(package)
    assert not (tmp_path / "evil.py").exists()


def test_a_file_that_is_no_zip_is_a_load_error(tmp_path: Path) -> None:
    package = tmp_path / "broken.difypkg"
    package.write_text("not a zip")

    with pytest.raises(PluginLoadError, match=f"cannot load plugin from {package}"):
        PluginSet.load([package])


@pytest.mark.parametrize("runtime", ["inprocess", "subprocess"])
@pytest.mark.parametrize(
    ("broken", "cause"),
    [
        ({"manifest.yaml": "version: [unclosed\n"}, ""),
        ({"provider/echo.yaml": "provider: [unclosed\n"}, "Error loading plugin configuration"),
    ],
    ids=["manifest", "provider"],
)
def test_a_load_error_for_a_package_names_the_package(
    tmp_path: Path, runtime: str, broken: dict[str, str], cause: str
) -> None:
    folder = tmp_path / "echo"
    shutil.copytree(EXAMPLE_PLUGIN, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name, text in broken.items():
        (folder / name).write_text(text)
    package = pack(folder, tmp_path / "echo.difypkg")

    with pytest.raises(PluginLoadError) as caught:
        PluginSet.load([package], lambda path: RuntimeChoice(runtime))

    *lines, unpacked = str(caught.value).splitlines()
    assert lines[0].startswith(f"cannot load plugin from {package}")
    assert cause in "\n".join(lines)
    assert "emulator-echo-" not in "\n".join(lines)
    assert re.fullmatch(r"\(the package was unpacked to .*emulator-echo-\w+\)", unpacked)
