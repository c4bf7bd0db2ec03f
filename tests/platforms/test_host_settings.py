"""What a rootfs takes from the host: the Debian mirror of its apt sources, its pip settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.platforms import hostconf, sources


def write_apt(top: Path, listing: str = "", **parts: str) -> Path:
    (top / "sources.list.d").mkdir(parents=True)
    (top / "sources.list").write_text(listing, encoding="utf-8")
    for name, text in parts.items():
        (top / "sources.list.d" / name.replace("_", ".")).write_text(text, encoding="utf-8")
    return top


def test_the_mirror_is_the_first_deb_source_of_the_suite_in_either_format(tmp_path: Path) -> None:
    apt = write_apt(
        tmp_path,
        "deb-src http://src.example/debian bookworm main\n"
        "# deb http://commented.example/debian bookworm main\n"
        "deb [arch=amd64] http://other.example/ubuntu jammy main\n",
        a_sources="Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n"
        "Components: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n"
        "Suites: bookworm bookworm-updates\nComponents: main contrib\n"
        "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
        b_list_disabled="deb http://disabled.example/debian bookworm main\n",
    )
    found = sources.mirror("bookworm", apt)
    assert found.uri == "http://mirror.example/debian"
    assert found.keyring == "/usr/share/keyrings/debian-archive-keyring.gpg"
    listed = write_apt(
        tmp_path / "b", "deb [signed-by=/k.gpg] http://list.example/debian bookworm main\n"
    )
    assert sources.mirror("bookworm", listed) == sources.Source(
        "http://list.example/debian", ("bookworm",), ("main",), "/k.gpg"
    )


def test_no_mirror_says_how_to_name_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    apt = write_apt(tmp_path, "deb http://archive.example/ubuntu jammy main\n")
    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)
    with pytest.raises(sources.NoMirror, match=sources.MIRROR_ENV):
        sources.mirror("bookworm", apt)
    monkeypatch.setenv(sources.MIRROR_ENV, "http://given.example/debian")
    assert sources.mirror("bookworm", apt).uri == "http://given.example/debian"


def test_pip_settings_point_inside_the_rootfs_and_name_what_to_bind(tmp_path: Path) -> None:
    index, wheels = tmp_path / "pypi" / "simple", tmp_path / "wheels"
    index.mkdir(parents=True)
    wheels.mkdir()
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("torch<=2\n", encoding="utf-8")
    listing = (
        "global.cert='/somewhere/bundle.pem'\n"
        f"global.constraint='{constraints}'\n"
        f"global.extra-index-url='file://{index} https://pypi.example/simple'\n"
        "global.find-links='/elsewhere'\n"
        "global.cache-dir='/host/cache'\n"
        f":env:.find-links='{wheels}'\n"
        "install.no-compile='1'\n"
    )
    settings = hostconf.settings_from(listing)
    assert settings.pip_conf == (
        "[global]\n"
        f"cert = {hostconf.BUNDLE}\n"
        f"constraint = {constraints}\n"
        f"extra-index-url = file://{index} https://pypi.example/simple\n"
        f"find-links = {wheels}\n"  # the environment's value wins, as in pip
        "[install]\n"
        "no-compile = 1\n"
    )
    assert settings.files == [constraints]
    assert settings.directories == [index.parent, wheels]  # a PEP 503 tree: its top directory

    rootfs = tmp_path / "rootfs"
    hostconf.apply(rootfs, settings)
    assert (rootfs / "etc/pip.conf").read_text(encoding="utf-8").endswith(settings.pip_conf)
    assert (rootfs / constraints.relative_to("/")).read_text(encoding="utf-8") == "torch<=2\n"
    assert (rootfs / hostconf.BUNDLE.relative_to("/")).read_bytes() == (
        hostconf.host_bundle().read_bytes()
    )
