"""A hand-written protobuf wire-format encoder for caffemodel files: the tests' independent writer.

It follows caffe.proto's field numbers directly (no protobuf library), so reading its output with
ftjax's schema-based reader checks both against the format.
"""

from __future__ import annotations

import numpy as np

CONVOLUTION, INNER_PRODUCT, RELU = 4, 14, 18  # V1LayerParameter.LayerType values


def varint(n: int) -> bytes:
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


def blob(array: np.ndarray, legacy: bool) -> bytes:
    """BlobProto: legacy num/channels/height/width (1..4) or BlobShape (7); packed floats (5)."""
    a = np.asarray(array, "<f4")
    if legacy:
        dims = (1,) * (4 - a.ndim) + a.shape
        head = b"".join(key(i + 1, 0) + varint(d) for i, d in enumerate(dims))
    else:
        head = delimited(7, delimited(1, b"".join(varint(d) for d in a.shape)))
    return head + delimited(5, a.tobytes())


def layer(name: str, blobs: list[np.ndarray], legacy: bool) -> bytes:
    if legacy:  # V1LayerParameter: name=4, type=5 (enum), blobs=6
        kind = CONVOLUTION if blobs and blobs[0].ndim == 4 else INNER_PRODUCT if blobs else RELU
        body = delimited(4, name.encode()) + key(5, 0) + varint(kind)
        return delimited(2, body + b"".join(delimited(6, blob(b, True)) for b in blobs))
    kind = "Convolution" if blobs and blobs[0].ndim == 4 else "InnerProduct" if blobs else "ReLU"
    body = delimited(1, name.encode()) + delimited(2, kind.encode())
    return delimited(100, body + b"".join(delimited(7, blob(b, False)) for b in blobs))


def caffemodel(layers: dict[str, tuple[np.ndarray, np.ndarray]], legacy: bool) -> bytes:
    """A NetParameter holding ``layers`` (name -> (weight OIHW/(out, in), bias)) plus weightless
    layers between them, as a real file has."""
    out = delimited(1, b"AlexNet")
    for name, (w, b) in layers.items():
        out += layer(name, [w, b], legacy) + layer(f"relu_{name}", [], legacy)
    return out
