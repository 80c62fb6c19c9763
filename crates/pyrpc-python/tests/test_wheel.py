"""The release wheel (issue #14 point 6), as `cargo xtask wheel` built it:
abi3, manylinux2014 by `auditwheel show`, no debug info, no build paths,
an sdist beside it, and the package under test is that wheel.

Runs when PYRPC_WHEEL (and PYRPC_SDIST) name the files, as `cargo xtask test`
sets them; skipped otherwise (a `maturin develop` build is not a wheel)."""

import os
import re
import struct
import subprocess
import sys
import tarfile
import zipfile

import pytest

import pyrpc

WHEEL = os.environ.get("PYRPC_WHEEL")
SDIST = os.environ.get("PYRPC_SDIST")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

if not WHEEL:
    pytest.skip("PYRPC_WHEEL not set", allow_module_level=True)


def test_the_tags_say_abi3_and_manylinux2014():
    name = os.path.basename(WHEEL)
    assert re.match(r"pyrpc-[\d.]+-cp39-abi3-.*manylinux2014_x86_64", name), name
    out = subprocess.run(
        [sys.executable, "-m", "auditwheel", "show", WHEEL], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert 'consistent with the following platform tag: "manylinux_2_17_x86_64"' in text, text


def elf_sections(data):
    """``{name: (offset, size)}`` of the sections of a 64-bit little-endian
    ELF file."""
    assert data[:6] == b"\x7fELF\x02\x01", "not a 64-bit little-endian ELF"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def section(i):
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", data, shoff + i * shentsize
        )
        return name, offset, size

    _, str_off, str_size = section(shstrndx)
    strtab = data[str_off : str_off + str_size]
    out = {}
    for i in range(shnum):
        name, offset, size = section(i)
        out[strtab[name : strtab.index(b"\0", name)].decode()] = (offset, size)
    return out


def elf_section_names(data):
    return list(elf_sections(data))


def elf_needed(data):
    """The shared libraries an ELF file needs (its DT_NEEDED entries)."""
    sections = elf_sections(data)
    dyn_off, dyn_size = sections[".dynamic"]
    str_off, _ = sections[".dynstr"]
    needed = []
    for entry in range(dyn_off, dyn_off + dyn_size, 16):
        tag, value = struct.unpack_from("<qQ", data, entry)
        if tag == 1:  # DT_NEEDED
            end = data.index(b"\0", str_off + value)
            needed.append(data[str_off + value : end].decode())
    return needed


def test_the_extension_has_no_debug_info_and_no_build_paths():
    home = os.path.expanduser("~")
    needles = [ROOT.encode(), (home + "/.cargo").encode(), (home + "/.rustup").encode()]
    with zipfile.ZipFile(WHEEL) as whl:
        [so] = [n for n in whl.namelist() if n.endswith(".so")]
        # A coarse bound (the section checks below are the real ones): an
        # unstripped build is several times larger. The stripped extension
        # is about 8.2 MiB since the Redis store, the connection balancer and
        # the direct call path; 12 MiB leaves room without hiding debug info.
        assert whl.getinfo(so).file_size < 12 * 1024 * 1024, whl.getinfo(so).file_size
        sections = elf_section_names(whl.read(so))
        assert ".text" in sections and ".eh_frame" in sections, sections
        assert not [s for s in sections if s.startswith((".debug", ".zdebug"))], sections
        assert ".symtab" not in sections, "not stripped"
        # The system's unwinder, not a static copy of zig's: glibc's
        # pthread_exit unwinds with libgcc_s (docs/decisions/0032).
        assert "libgcc_s.so.1" in elf_needed(whl.read(so))
        for name in whl.namelist():
            data = whl.read(name)
            for needle in needles:
                assert needle not in data, (name, needle)
        metadata = [n for n in whl.namelist() if ".dist-info/" in n]
        assert not any("/sboms/" in n for n in metadata), metadata
        entry_points = whl.read(next(n for n in metadata if n.endswith("entry_points.txt")))
        assert b"pyrpc = pyrpc.__main__:script" in entry_points.replace(b"=", b" = ")


def test_the_sdist_builds_the_same_package():
    assert SDIST and SDIST.endswith(".tar.gz")
    with tarfile.open(SDIST) as tar:
        names = tar.getnames()
    assert any(n.endswith("/pyproject.toml") for n in names)
    assert any(n.endswith("crates/pyrpc-python/src/lib.rs") for n in names)
    assert any(n.endswith("crates/pyrpc-cli/src/lib.rs") for n in names)


def test_the_package_under_test_is_the_installed_wheel():
    here = os.path.dirname(pyrpc.__file__)
    assert "site-packages" in here and not here.startswith(os.path.join(ROOT, "crates")), here
