"""Reading TensorFlow checkpoints without TensorFlow: the tensor-bundle format, numpy only.

A checkpoint ``PREFIX`` is two kinds of file. ``PREFIX.index`` is a table in LevelDB's format: data blocks of
prefix-compressed key/value entries, an index block pointing at them, and a 48-byte footer ending in a magic
number. Each block is followed by its compression type and a masked CRC-32C. The keys are tensor names, plus the
empty key for the header (``BundleHeaderProto``: the number of data shards and the byte order). Each value is a
``BundleEntryProto`` (protobuf): the tensor's dtype, shape, data shard, offset, size and the masked CRC-32C of its
bytes. ``PREFIX.data-00000-of-0000N`` holds the raw tensors. A checkpoint is read whole: every block's and every
tensor's checksum is verified, and every size is checked against the file it points into before anything is
allocated, so a damaged or hostile file gets an ``AudioFileError`` naming it, never a wrong tensor.

Written from the format's public description (TensorFlow's ``tensor_bundle.proto`` and LevelDB's table format);
``tensorflow-checkpoint-reader`` no longer imports with numpy 2 on Python 3.11.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import AudioFileError

__all__ = ["read_tf_checkpoint"]

_MAGIC = 0xDB4775248B80FB57  # LevelDB's table magic number, the footer's last 8 bytes
_FOOTER = 48
# TensorFlow's DataType enum -> numpy (the types a checkpoint of weights holds)
_DTYPES = {
    1: "<f4",
    2: "<f8",
    3: "<i4",
    4: "u1",
    5: "<i2",
    6: "i1",
    9: "<i8",
    10: "?",
    19: "<f2",
    17: "<u2",
    22: "<u4",
    23: "<u8",
}
_DTYPE_NAMES = {7: "string", 14: "bfloat16", 8: "complex64", 18: "complex128", 20: "resource", 21: "variant"}


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data) -> int:
    """CRC-32C (Castagnoli) of ``data``, as LevelDB and TensorFlow compute it.

    Examples:
        >>> hex(crc32c(b"123456789"))
        '0xe3069283'
    """
    crc, table = 0xFFFFFFFF, _TABLE
    for byte in data if isinstance(data, (bytes, memoryview)) else bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _unmask(masked: int) -> int:
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("a varint runs past its end")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf) -> list[tuple[int, object]]:
    """``(field number, value)`` of a protobuf message: varints and fixed numbers as ints, the rest as bytes."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = bytes(buf[pos : pos + n]), pos + n
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"protobuf wire type {wire} is not one a checkpoint uses")
        if pos > len(buf):
            raise ValueError("a protobuf field runs past the end of its message")
        out.append((number, value))
    return out


def _block(index: bytes, handle: bytes) -> bytes:
    """The contents of the block a ``BlockHandle`` (offset, size varints) points at, its checksum verified."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    end = offset + size
    if end + 5 > len(index):
        raise ValueError(f"a block of {size} bytes at {offset} runs past the end of the file ({len(index)} bytes)")
    kind, masked = index[end], int.from_bytes(index[end + 1 : end + 5], "little")
    if kind != 0:
        raise ValueError(f"a block is compressed (type {kind}); only uncompressed tables are read")
    if crc32c(index[offset : end + 1]) != _unmask(masked):
        raise ValueError(f"the block at byte {offset} does not match its checksum")
    return index[offset:end]


def _entries(block: bytes):
    """``(key, value)`` of a block: entries share a prefix with the one before; the restart array ends it."""
    if len(block) < 4:
        raise ValueError("a block too short for its restart count")
    restarts = int.from_bytes(block[-4:], "little")
    limit = len(block) - 4 - 4 * restarts
    if limit < 0:
        raise ValueError(f"a block claims {restarts} restart points, more than it holds")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        fresh, pos = _varint(block, pos)
        size, pos = _varint(block, pos)
        if shared > len(key) or pos + fresh + size > limit:
            raise ValueError("a block entry runs past its block")
        key = key[:shared] + block[pos : pos + fresh]
        yield key, block[pos + fresh : pos + fresh + size]
        pos += fresh + size


def _shape(message: bytes) -> tuple[int, ...]:
    dims = []
    for number, value in _fields(message):
        if number == 2:  # Dim
            size = next((v for n, v in _fields(value) if n == 1), 0)
            dims.append(size - 2**64 if size >= 2**63 else size)
        elif number == 3 and value:
            raise ValueError("a tensor of unknown rank")
    if any(d < 0 for d in dims):
        raise ValueError(f"a tensor of unknown size {dims}")
    return tuple(dims)


def read_tf_checkpoint(prefix, names=None) -> dict[str, np.ndarray]:
    """Every tensor (or those in ``names``) of the TensorFlow checkpoint ``prefix`` (the path before ``.index``),
    as numpy arrays of their stored dtype and shape, each checksum verified.

    Args:
        prefix: e.g. ``'model.ckpt-1000'`` for ``model.ckpt-1000.index`` and its ``.data-*`` shards; a folder
            path ending in ``/`` for files named ``.index`` inside it (as the ``musicnn`` package ships them).
        names: read only these tensors (all by default).

    Returns:
        ``{name: array}`` in the checkpoint's (sorted) order.

    Raises:
        AudioFileError: a missing file; a file that is not a checkpoint, or is damaged (a checksum that does not
            match, a size that runs past its file), naming the file; a tensor of a type or layout it cannot read
            (strings, partitioned variables), naming the tensor; a name in ``names`` the checkpoint lacks.

    Examples:
        >>> weights = read_tf_checkpoint("musicnn/MTT_musicnn/")  # the musicnn wheel's folder  # doctest: +SKIP
        >>> weights["conv2d/kernel"].shape, weights["dense_1/kernel"].shape                       # doctest: +SKIP
        ((7, 38, 1, 204), (200, 50))
    """
    index_path = Path(f"{prefix}.index")
    try:
        index = index_path.read_bytes()
    except OSError as err:
        raise AudioFileError(
            index_path, f"cannot be read ({err.strerror or err}): pass a checkpoint's prefix, the path before .index"
        ) from None
    try:
        if len(index) < _FOOTER or int.from_bytes(index[-8:], "little") != _MAGIC:
            raise ValueError("no table footer (its magic number is missing): not a TensorFlow checkpoint index")
        footer = index[-_FOOTER:]
        _, pos = _varint(footer, 0)  # the metaindex block, unused
        pos = _varint(footer, pos)[1]
        entries = {}
        for _, handle in _entries(_block(index, footer[pos:])):
            entries.update(_entries(_block(index, handle)))
        header = dict(_fields(entries.pop(b"", b"")))
    except (ValueError, IndexError) as err:
        raise AudioFileError(index_path, f"is not a readable TensorFlow checkpoint index ({err})") from None
    if header.get(2, 0) != 0:
        raise AudioFileError(index_path, "holds big-endian tensors, which this reader does not convert")
    shards = header.get(1, 1)
    wanted = None if names is None else set(names)
    if wanted is not None and wanted - {k.decode() for k in entries}:
        missing = sorted(wanted - {k.decode() for k in entries})
        held = sorted(k.decode() for k in entries)
        raise AudioFileError(index_path, f"has no tensor named {missing[:5]}; it holds {held[:8]}...")
    out, files = {}, {}
    for key, value in entries.items():
        name = key.decode("utf-8", "replace")
        if wanted is not None and name not in wanted:
            continue
        try:
            fields = dict(_fields(value))
            if 7 in fields:
                raise ValueError("it is a partitioned variable (slices), which this reader does not join")
            dtype_id = fields.get(1, 0)
            if dtype_id not in _DTYPES:
                kind = _DTYPE_NAMES.get(dtype_id, f"type {dtype_id}")
                raise ValueError(f"its dtype, {kind}, is not a numeric one this reader reads")
            dtype, shape = np.dtype(_DTYPES[dtype_id]), _shape(fields.get(2, b""))
            shard, offset, size = fields.get(3, 0), fields.get(4, 0), fields.get(5, 0)
            if size != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"its {size} bytes do not hold a {dtype} tensor of shape {shape}")
            if not 0 <= shard < shards:
                raise ValueError(f"it lies in data shard {shard}, but the checkpoint has {shards}")
        except ValueError as err:
            raise AudioFileError(index_path, f"tensor {name!r} cannot be read: {err}") from None
        data_path = Path(f"{prefix}.data-{shard:05d}-of-{shards:05d}")
        if data_path not in files:
            try:
                files[data_path] = np.memmap(data_path, dtype=np.uint8, mode="r")
            except (OSError, ValueError) as err:
                raise AudioFileError(data_path, f"the checkpoint's data cannot be read ({err})") from None
        data = files[data_path]
        if offset + size > data.size:
            raise AudioFileError(
                data_path,
                f"is cut short: tensor {name!r} needs bytes {offset}-{offset + size}, the file has {data.size}",
            )
        raw = np.array(data[offset : offset + size])  # (the one copy out of the map: checked, then viewed)
        if 6 in fields and crc32c(memoryview(raw)) != _unmask(fields[6]):
            raise AudioFileError(data_path, f"tensor {name!r} does not match its checksum: the file is damaged")
        out[name] = raw.view(dtype).reshape(shape)
    return out
