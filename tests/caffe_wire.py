"""A hand-written protobuf wire-format encoder for caffemodel files: the tests' independent writer.

It follows caffe.proto's field numbers directly (no protobuf library), so reading its output with
ftjax's schema-based reader checks both against the format.
"""

from __future__ import annotations

import numpy as np

V1_TYPES = {"Convolution": 4, "InnerProduct": 14, "ReLU": 18}  # V1LayerParameter.LayerType


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative int32/int64 travels as its 64-bit two's complement
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(field: int, wire: int) -> bytes:
    return varint(field << 3 | wire)


def delimited(field: int, payload: bytes) -> bytes:
    return key(field, 2) + varint(len(payload)) + payload


def blob(array: np.ndarray, legacy: bool, dims: tuple[int, ...] | None = None,
         double: bool = False) -> bytes:
    """BlobProto: legacy num/channels/height/width (1..4) or BlobShape (7) declaring ``dims``
    (default: the array's shape); the values packed as floats (5) or doubles (8)."""
    values = np.asarray(array, "<f8" if double else "<f4")
    dims = values.shape if dims is None else tuple(dims)
    if legacy:
        assert len(dims) <= 4, "legacy blobs have at most 4 dimensions"
        dims = (1,) * (4 - len(dims)) + dims
        head = b"".join(key(i + 1, 0) + varint(d) for i, d in enumerate(dims))
    else:
        head = delimited(7, delimited(1, b"".join(varint(d) for d in dims)))
    return head + delimited(8 if double else 5, values.tobytes())


def encoded_layer(name: str, blobs: list[bytes], kind: str, legacy: bool) -> bytes:
    """A layer of ``kind`` (Convolution, InnerProduct, ReLU) holding already encoded blobs."""
    if legacy:  # V1LayerParameter: name=4, type=5 (enum), blobs=6
        body = delimited(4, name.encode()) + key(5, 0) + varint(V1_TYPES[kind])
        return delimited(2, body + b"".join(delimited(6, b) for b in blobs))
    body = delimited(1, name.encode()) + delimited(2, kind.encode())
    return delimited(100, body + b"".join(delimited(7, b) for b in blobs))


def layer(name: str, blobs: list[np.ndarray], legacy: bool) -> bytes:
    kind = "Convolution" if blobs and blobs[0].ndim == 4 else "InnerProduct" if blobs else "ReLU"
    return encoded_layer(name, [blob(b, legacy) for b in blobs], kind, legacy)


def caffemodel(layers: dict[str, tuple[np.ndarray, np.ndarray]], legacy: bool) -> bytes:
    """A NetParameter holding ``layers`` (name -> (weight OIHW/(out, in), bias)) plus weightless
    layers between them, as a real file has."""
    out = delimited(1, b"AlexNet")
    for name, (w, b) in layers.items():
        out += layer(name, [w, b], legacy) + layer(f"relu_{name}", [], legacy)
    return out
