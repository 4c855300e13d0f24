"""The shards' tar reader (fastai_audio.data.tarstream): webdataset's samples from every tar format Python and GNU
tar write, and hostile bytes that stop a shard with one typed error, never a crash or a huge allocation."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastai_audio.data import tarstream
from fastai_audio.data.tarstream import BrokenShardError, tar_members, tar_samples

wds = pytest.importorskip("webdataset", reason="the reference reader is webdataset's (the dev extra installs it)")

LONG = "deep/" + "d" * 140 + "/"
MEMBERS = [
    (LONG + "k1.wav", b"1" * 700),
    (LONG + "k1.JSON", b"{}"),
    ("k2.wav", b""),
    ("k2.json", b"2" * 513),
    ("__meta__", b"m"),
    ("dir/", None),
    ("noext", b"x"),
    ("ü-名.tar.gz", b"u"),
    ("k3.wav", b"3" * 1024),
]


def make_tar(fmt: int, members=MEMBERS, mtime: float = 1.5) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            if data is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
                continue
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("k4.lnk")
        link.type, link.linkname = tarfile.SYMTYPE, "k3.wav"
        tar.addfile(link)
    return buf.getvalue()


def webdataset_samples(data: bytes, tmp_path) -> list:
    path = tmp_path / "shard.tar"
    path.write_bytes(data)
    samples = list(wds.tarfile_samples([{"url": str(path)}]))
    for s in samples:
        s["__url__"] = "u"
    return samples


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT])
def test_every_tar_format_gives_webdatasets_samples(fmt, tmp_path):
    """pax (long names and fractional mtimes as extended headers), GNU (long names as ././@LongLink members), ustar
    (long paths split into prefix and name); directories, links and __meta__ members skipped as webdataset skips
    them, keys cut at the first dot of the base name, extensions lower-cased."""
    members = MEMBERS if fmt != tarfile.USTAR_FORMAT else [m for m in MEMBERS if "ü" not in m[0]]
    data = make_tar(fmt, members)
    ours = list(tar_samples(io.BytesIO(data), "u"))
    assert ours == webdataset_samples(data, tmp_path)
    unicode = ["ü-名"] if fmt != tarfile.USTAR_FORMAT else []
    assert [s["__key__"] for s in ours] == [LONG + "k1", "k2", *unicode, "k3"]
    assert ours[0]["json"] == b"{}" and ours[0]["wav"] == b"1" * 700


def test_a_global_pax_header_and_a_pax_size_apply_to_the_next_members():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers={"comment": "global"}) as tar:
        info = tarfile.TarInfo("a.wav")
        info.size, info.pax_headers = 3, {"path": "renamed.wav"}
        tar.addfile(info, io.BytesIO(b"abc"))
    assert list(tar_members(io.BytesIO(buf.getvalue()))) == [("renamed.wav", b"abc")]


class Trickle(io.RawIOBase):
    """A stream that returns at most 7 bytes a read, as a pipe or a socket may."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def readable(self):
        return True

    def read(self, n=-1):
        chunk = self.data[self.pos : self.pos + min(n, 7)]
        self.pos += len(chunk)
        return chunk


def test_short_reads_from_pipes_are_completed():
    data = make_tar(tarfile.GNU_FORMAT)
    assert list(tar_samples(Trickle(data), "u")) == list(tar_samples(io.BytesIO(data), "u"))


def header_offsets(data: bytes) -> list[int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.offset for m in tar.getmembers()]


def test_broken_shards_name_the_byte_and_the_reason():
    data = make_tar(tarfile.USTAR_FORMAT, [("a.wav", b"1" * 600), ("a.json", b"{}"), ("b.wav", b"2" * 600)])
    cases = {
        "ends inside member 'b.wav' (100 of its 600 bytes)": data[: header_offsets(data)[2] + 512 + 100],
        "ends inside a member's header (200 of 512 bytes)": data[: header_offsets(data)[2] + 200],
    }
    corrupt = bytearray(data)
    corrupt[header_offsets(data)[1] + 10] ^= 0xFF  # a byte of the second header's name
    cases["checksum does not add up"] = bytes(corrupt)
    huge = bytearray(data)
    start = header_offsets(data)[2]
    huge[start + 124 : start + 136] = b"\x80" + (1 << 40).to_bytes(11, "big")  # 1 TiB in GNU's base-256
    huge[start + 148 : start + 156] = b" " * 8
    huge[start + 148 : start + 156] = f"{sum(huge[start : start + 512]):06o}\0 ".encode()
    cases["declares 1099511627776 bytes, more than the 1073741824"] = bytes(huge)
    for reason, broken in cases.items():
        got = []
        with pytest.raises(BrokenShardError, match=reason.replace("(", r"\(").replace(")", r"\)")) as caught:
            for name, _ in tar_members(io.BytesIO(broken), "s.tar"):
                got.append(name)
        assert caught.value.url == "s.tar" and caught.value.offset in header_offsets(data)
        assert got == ["a.wav", "a.json"][: len(got)] and len(got) >= 1  # what came before the break still came
    with pytest.raises(BrokenShardError, match="two members"):
        list(tar_samples(io.BytesIO(make_tar(tarfile.GNU_FORMAT, [("a.wav", b"1"), ("a.wav", b"2")])), "s.tar"))


def test_a_stream_without_end_blocks_ends_cleanly():
    data = make_tar(tarfile.USTAR_FORMAT, [("a.wav", b"1" * 600)])
    assert list(tar_members(io.BytesIO(data[: 512 + 1024]))) == [("a.wav", b"1" * 600)]
    assert list(tar_members(io.BytesIO(b""))) == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=12), st.integers(0, 5000))
def test_hostile_bytes_stop_the_shard_with_one_error_and_bounded_memory(flips, cut):
    """Any byte changed, any length: the reader yields members no larger than the shard and stops with
    ``BrokenShardError`` (or at its end), never another exception."""
    data = bytearray(make_tar(tarfile.PAX_FORMAT)[:4096])
    for pos, value in flips:
        data[pos % len(data)] = value
    data = bytes(data[: max(cut, 1)])
    try:
        for name, value in tar_members(io.BytesIO(data), "fuzz.tar"):
            assert isinstance(name, str) and len(value) <= len(data)
    except BrokenShardError as err:
        assert err.url == "fuzz.tar"


def test_the_member_limit_is_a_module_constant(monkeypatch):
    monkeypatch.setattr(tarstream, "MAX_MEMBER_BYTES", 100)
    data = make_tar(tarfile.USTAR_FORMAT, [("a.wav", b"1" * 600)])
    with pytest.raises(BrokenShardError, match="declares 600 bytes, more than the 100"):
        list(tar_members(io.BytesIO(data)))
