"""Reading TensorFlow checkpoints without TensorFlow (fastai_audio.models.tf_checkpoint): the checkpoints the
``musicnn`` wheel ships (when it is installed), a checkpoint written here in the same format, and damaged files."""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastai_audio.errors import AudioFileError
from fastai_audio.models.tf_checkpoint import _MAGIC, crc32c, read_tf_checkpoint


def _mask(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _entry(array: np.ndarray, offset: int, dtype_id: int) -> bytes:
    shape = b"".join(_field(2, 2, _varint(len(d)) + d) for d in (_field(1, 0, _varint(n)) for n in array.shape))
    return (
        _field(1, 0, _varint(dtype_id))
        + _field(2, 2, _varint(len(shape)) + shape)
        + _field(4, 0, _varint(offset))
        + _field(5, 0, _varint(array.nbytes))
        + _field(6, 5, _mask(crc32c(array.tobytes())).to_bytes(4, "little"))
    )


def write_checkpoint(prefix: str, tensors: dict, dtype_ids: dict) -> None:
    """A one-shard checkpoint in TensorFlow's tensor-bundle layout (LevelDB table, uncompressed blocks), written
    from the format's description; the real files of the musicnn wheel check the reader against TensorFlow's."""
    data, entries = io.BytesIO(), [(b"", _field(1, 0, _varint(1)))]  # the header: one data shard, little-endian
    for name in sorted(tensors):
        array = np.array(tensors[name], order="C")  # (ascontiguousarray would make a scalar 1-d)
        entries.append((name.encode(), _entry(array, data.tell(), dtype_ids[name])))
        data.write(array.tobytes())
    Path(f"{prefix}.data-00000-of-00001").write_bytes(data.getvalue())

    def block(items) -> bytes:
        body = b"".join(_varint(0) + _varint(len(k)) + _varint(len(v)) + k + v for k, v in items)
        return body + (0).to_bytes(4, "little") + (1).to_bytes(4, "little")  # one restart point, at 0

    out = bytearray()

    def put(contents: bytes) -> bytes:
        handle = _varint(len(out)) + _varint(len(contents))
        out.extend(contents + b"\0" + _mask(crc32c(contents + b"\0")).to_bytes(4, "little"))
        return handle

    data_handle = put(block(entries))
    meta_handle = put(block([]))
    index_handle = put(block([(entries[-1][0], data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + _MAGIC.to_bytes(8, "little")
    Path(f"{prefix}.index").write_bytes(bytes(out) + footer)


@pytest.fixture
def small_checkpoint(tmp_path) -> tuple[str, dict]:
    rng = np.random.default_rng(0)
    tensors = {
        "conv/kernel": rng.standard_normal((3, 3, 1, 4)).astype(np.float32),
        "conv/bias": np.arange(4, dtype=np.float32),
        "global_step": np.array(1000, dtype=np.int64),
        "dense/kernel": rng.standard_normal((8, 2)).astype(np.float64),
    }
    ids = {"conv/kernel": 1, "conv/bias": 1, "global_step": 9, "dense/kernel": 2}
    prefix = str(tmp_path / "model.ckpt-1000")
    write_checkpoint(prefix, tensors, ids)
    return prefix, tensors


def test_a_checkpoint_reads_back_every_tensor_exactly(small_checkpoint):
    prefix, tensors = small_checkpoint
    got = read_tf_checkpoint(prefix)
    assert list(got) == sorted(tensors)
    for name, want in tensors.items():
        assert got[name].dtype == want.dtype and got[name].shape == want.shape
        np.testing.assert_array_equal(got[name], want)
    assert list(read_tf_checkpoint(prefix, names=["conv/bias"])) == ["conv/bias"]
    with pytest.raises(AudioFileError, match=r"has no tensor named \['nope'\]"):
        read_tf_checkpoint(prefix, names=["nope"])


def test_damaged_files_are_refused_naming_them(small_checkpoint, tmp_path):
    prefix, _ = small_checkpoint
    index, data = Path(f"{prefix}.index"), Path(f"{prefix}.data-00000-of-00001")
    good_index, good_data = index.read_bytes(), data.read_bytes()
    cases = [
        (index, good_index[:-8], "its magic number is missing"),
        (index, bytes([good_index[0] ^ 0xFF]) + good_index[1:], "does not match its checksum"),
        (data, good_data[:-10], "is cut short: tensor 'dense/kernel' needs bytes 160-288, the file has 286"),
        (data, good_data[:5] + bytes([good_data[5] ^ 1]) + good_data[6:], "does not match its checksum"),
    ]
    for path, damaged, message in cases:
        path.write_bytes(damaged)
        with pytest.raises(AudioFileError, match=message) as info:
            read_tf_checkpoint(prefix)
        assert info.value.path == str(path)
        index.write_bytes(good_index), data.write_bytes(good_data)
    with pytest.raises(AudioFileError, match=r"nowhere\.index: cannot be read"):
        read_tf_checkpoint(tmp_path / "nowhere")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_any_damage_to_the_index_is_an_error_naming_it_or_the_same_tensors(small_checkpoint, flips, cut):
    prefix, tensors = small_checkpoint
    index = Path(f"{prefix}.index")
    good = index.read_bytes()
    damaged = bytearray(good)
    for pos, value in flips:
        damaged[pos % len(damaged)] = value
    index.write_bytes(bytes(damaged[: cut % (len(damaged) + 1)] if cut is not None else damaged))
    try:
        got = read_tf_checkpoint(prefix)
    except AudioFileError as err:
        assert err.path in (str(index), f"{prefix}.data-00000-of-00001")
    else:  # a byte that does not matter (padding of the footer): the same tensors
        assert list(got) == sorted(tensors) and all(np.array_equal(got[k], v) for k, v in tensors.items())
    finally:
        index.write_bytes(good)


def _musicnn_root() -> Path:
    spec = importlib.util.find_spec("musicnn")
    if spec is None or spec.origin is None:
        pytest.skip("the musicnn wheel is not installed (pip install --no-deps musicnn): its checkpoints are the test")
    return Path(os.path.dirname(spec.origin))


@pytest.mark.parametrize(
    "model, tensors", [("MTT_musicnn", 150), ("MSD_musicnn", 150), ("MTT_vgg", 86), ("MSD_vgg", 86)]
)
def test_the_checkpoints_tensorflow_wrote_read_whole_with_every_checksum(model, tensors):
    """The musicnn wheel's checkpoints, written by TensorFlow: every block and tensor checksum verifies, and the
    shapes are those of the networks: MusiCNN's first timbral filters span 7 frames x 38 of the 96 mel bands."""
    weights = read_tf_checkpoint(f"{_musicnn_root() / model}/")
    assert len(weights) == tensors and all(v.dtype == np.float32 for k, v in weights.items() if "power" not in k)
    if model.endswith("musicnn"):
        assert weights["conv2d/kernel"].shape == (7, 38, 1, 204) and weights["dense_1/kernel"].shape == (200, 50)
    else:
        assert weights["1CNN/kernel"].shape == (3, 3, 1, 128)
