"""A JSON document inside a .tflite flatbuffer, so that one file holds everything an app needs.

The TFLite schema has a `metadata` table: named entries, each pointing at one of the model's
buffers. The interpreter ignores entries it does not know, so a buffer holding our JSON (the text
encoder config, the label vocabulary, output names; see `prado_tiny.predictor`) travels with the
model and changes nothing about how it runs.

* `embed_metadata(model_bytes, document)` returns new flatbuffer bytes with `document` stored as
  UTF-8 JSON, zlib-compressed, under the entry `METADATA_NAME` (an existing entry of that name is
  replaced). The WordPiece vocabulary makes the document 20-50 KB of JSON; compressed it is about
  a third of that, which matters in a 1 MB model. A payload that starts with `{` is read as plain
  JSON (`compress=False`, and files written before compression); anything else as zlib (RFC 1950,
  which `java.util.zip.Inflater` and Apple's `Compression` read too).
* `read_metadata(model)` returns the document, from a path or bytes; raises `MetadataError`
  naming the file when there is none.

Example:

>>> data = embed_metadata(open("model.tflite", "rb").read(), {"labels": ["ตั้งเวลา"]})  # doctest: +SKIP
>>> read_metadata(data)  # doctest: +SKIP
{'labels': ['ตั้งเวลา']}

Only `ai_edge_litert` is needed (no TensorFlow), so the reading side works in a slim runtime.

Rewriting goes through the flatbuffer object API (`ai_edge_litert.tools.flatbuffer_utils`): weights
the converter stored after the flatbuffer by offset (models past 2 GB) come back inline, so the
result must stay under the 2 GB flatbuffer limit (tiny models are far below it); the converter's
own entries (`min_runtime_version`, `CONVERSION_METADATA`, `buffer_location`) are kept as they are.
"""
from __future__ import annotations

import json
import os
import zlib
from typing import Any, Dict, Optional, Union

from prado_tiny.export.inspect import _read, _schema

METADATA_NAME = "prado_tiny"
# The TFLite schema declares `Buffer.data` with `force_align: 16`; the C++ writer honours it and
# some kernels and delegates read weights in place, so rewritten buffers keep that alignment.
_BUFFER_ALIGNMENT = 16

ModelSource = Union[str, "os.PathLike[str]", bytes, bytearray]


class MetadataError(ValueError):
    """A model without readable prado_tiny metadata; the message names the file."""


def embed_metadata(model_bytes: Union[bytes, bytearray], document: Dict[str, Any],
                   compress: bool = True, keep_tensor_names: bool = True) -> bytes:
    """Returns the flatbuffer `model_bytes` with `document` stored under `METADATA_NAME`.

    The document is serialised as UTF-8 JSON (`ensure_ascii=False`, `sort_keys=True`) into a new
    buffer; an existing `METADATA_NAME` entry is replaced (its old buffer is dropped), every other
    entry, tensor, op and signature stays as it was, so the model computes exactly what it did.

    Args:
      model_bytes: a TFLite flatbuffer.
      document: any JSON-serialisable dict.
      compress: store the JSON zlib-compressed (level 9); `read_metadata` reads either form.
      keep_tensor_names: False blanks the names of every tensor except the subgraphs' inputs and
        outputs (apps find those by name). The converter names each tensor after its TF op path
        (`model/layer/sublayer/MatMul`): about 19 KB in a pNLP-Mixer Base, which no runtime reads.

    Returns:
      The new flatbuffer bytes.

    Raises:
      MetadataError: `model_bytes` is not a TFLite flatbuffer.
      TypeError / ValueError: `document` is not a JSON-serialisable dict (NaN, lone surrogates).

    Example:
    >>> new = embed_metadata(model_bytes, {"format": "prado-tiny-model", "version": 1})  # doctest: +SKIP
    """
    if not isinstance(document, dict):
        raise TypeError(f"document must be a dict, got {type(document).__name__}")
    # allow_nan=False: NaN/Infinity are not JSON and other readers (an app's parser) reject them.
    text = json.dumps(document, ensure_ascii=False, sort_keys=True, allow_nan=False)
    payload = text.encode("utf-8")
    if compress:
        payload = zlib.compress(payload, 9)

    import numpy as np
    from ai_edge_litert.tools import flatbuffer_utils as fu

    data, source = _read(model_bytes)
    _root(data, source)  # a clear error before the object API fails obscurely
    schema = _schema()
    # read_model_from_bytearray resolves buffers stored by offset (large models) into inline data.
    model = fu.read_model_from_bytearray(bytearray(data))
    old = [m for m in (model.metadata or []) if _name(m.name) == METADATA_NAME]
    model.metadata = [m for m in (model.metadata or []) if _name(m.name) != METADATA_NAME]
    dropped = {m.buffer for m in old} - {m.buffer for m in model.metadata} - _tensor_buffers(model)
    dropped.discard(0)  # buffer 0 is the shared empty buffer
    if dropped:
        _drop_buffers(model, dropped)
    if not keep_tensor_names:
        for sg in model.subgraphs or []:
            io = set(sg.inputs if sg.inputs is not None else []) | set(
                sg.outputs if sg.outputs is not None else [])
            for i, t in enumerate(sg.tensors or []):
                if i not in io:
                    t.name = b""

    model.buffers.append(schema.BufferT(data=np.frombuffer(payload, dtype=np.uint8)))
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    return pack_model(model)


def read_metadata(model: ModelSource) -> Dict[str, Any]:
    """The prado_tiny document of a .tflite (a path or the bytes).

    Reads the flatbuffer in place (no copy of the weights into Python objects).

    Args:
      model: a path to a .tflite file, or its bytes.

    Returns:
      The document `embed_metadata` stored.

    Raises:
      MetadataError: the file does not exist, is not a TFLite flatbuffer, has no `prado_tiny`
        metadata, or it is not a UTF-8 JSON object. The message names the file.

    Example:
    >>> read_metadata("model.tflite")["labels"]  # doctest: +SKIP
    """
    try:
        data, source = _read(model)
    except FileNotFoundError:
        raise MetadataError(f"{os.fspath(model)}: model file not found") from None
    except (IsADirectoryError, PermissionError, OSError) as e:
        raise MetadataError(f"{os.fspath(model)}: cannot read model file: {e}") from e
    payload = _find_payload(data, source)
    if payload is None:
        raise MetadataError(f"{source}: no {METADATA_NAME!r} metadata in this model "
                            "(it was not exported by prado_tiny, or the metadata was stripped)")
    if not payload.lstrip().startswith(b"{"):
        try:
            payload = zlib.decompress(payload)
        except zlib.error as e:
            raise MetadataError(f"{source}: {METADATA_NAME!r} metadata is neither JSON nor "
                                f"zlib-compressed JSON: {e}") from e
    try:
        document = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MetadataError(f"{source}: {METADATA_NAME!r} metadata is not valid UTF-8 JSON: {e}") from e
    if not isinstance(document, dict):
        raise MetadataError(f"{source}: {METADATA_NAME!r} metadata is not a JSON object "
                            f"(got {type(document).__name__})")
    return document


def metadata_names(model: ModelSource) -> list:
    """The names of all metadata entries of a model, in order (the converter adds its own, e.g.
    `min_runtime_version`)."""
    data, source = _read(model)
    m = _root(data, source)
    return [_name(m.Metadata(i).Name()) for i in range(m.MetadataLength())]


def pack_model(model) -> bytes:
    """Serialises a `ModelT` (the flatbuffer object API) to bytes, every buffer 16-byte aligned.

    `flatbuffer_utils.convert_object_to_bytearray` packs buffers without the schema's alignment
    and, for data it got as a `bytearray` slice (buffers that were stored by offset), one byte
    per Python call; this packs every buffer as one aligned block copy.
    """
    import flatbuffers
    from ai_edge_litert.tools import flatbuffer_utils as fu

    schema = _schema()
    buffers = model.buffers
    model.buffers = [_AlignedBufferT(b, schema) for b in buffers or []]
    try:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=fu._TFLITE_FILE_IDENTIFIER)
    finally:
        model.buffers = buffers  # the caller's object stays as it was
    return bytes(builder.Output())


# ---------------------------------------------------------------------------------------------


def _root(data: bytes, source: str):
    schema = _schema()
    if len(data) < 8 or not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise MetadataError(f"{source}: not a TFLite flatbuffer (no TFL3 identifier)")
    return schema.Model.GetRootAsModel(data, 0)


def _find_payload(data: bytes, source: str) -> Optional[bytes]:
    """The bytes of the last `METADATA_NAME` entry's buffer, or None."""
    m = _root(data, source)
    try:
        found = None
        for i in range(m.MetadataLength()):
            entry = m.Metadata(i)
            if _name(entry.Name()) == METADATA_NAME:
                found = entry.Buffer()
        if found is None:
            return None
        if not 0 <= found < m.BuffersLength():
            raise MetadataError(f"{source}: {METADATA_NAME!r} metadata points at buffer {found}, "
                                f"the model has {m.BuffersLength()}")
        buf = m.Buffers(found)
        if buf.Offset() > 1:  # stored outside the flatbuffer proper, after it (large models)
            start, size = buf.Offset(), buf.Size()
            if start + size > len(data):
                raise MetadataError(f"{source}: {METADATA_NAME!r} metadata lies past the file end")
            return bytes(data[start:start + size])
        return buf.DataAsNumpy().tobytes() if buf.DataLength() else b""
    except MetadataError:
        raise
    except Exception as e:  # a truncated or corrupt flatbuffer fails inside the accessors
        raise MetadataError(f"{source}: corrupt TFLite flatbuffer: {e}") from e


def _name(name) -> str:
    if isinstance(name, (bytes, bytearray)):
        return name.decode("utf-8", "replace")
    return "" if name is None else str(name)


def _tensor_buffers(model) -> set:
    return {t.buffer for sg in model.subgraphs or [] for t in sg.tensors or []}


def _drop_buffers(model, dropped: set) -> None:
    """Removes buffers no tensor or metadata entry uses, renumbering the references to the rest."""
    keep = [i for i in range(len(model.buffers)) if i not in dropped]
    new_index = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for sg in model.subgraphs or []:
        for t in sg.tensors or []:
            t.buffer = new_index[t.buffer]
    for m in model.metadata or []:
        m.buffer = new_index[m.buffer]


class _AlignedBufferT:
    """Packs like the schema's `BufferT`, with the data vector aligned to `_BUFFER_ALIGNMENT`."""

    def __init__(self, buffer, schema):
        self.data, self.offset, self.size = buffer.data, buffer.offset, buffer.size
        self._schema = schema

    def Pack(self, builder):  # noqa: N802 (the flatbuffers object API's name)
        import numpy as np

        schema = self._schema
        vector = None
        if self.data is not None:
            # One block copy, as flatbuffers' CreateNumpyVector does, but with the alignment.
            raw = np.asarray(self.data, dtype=np.uint8).reshape(-1).tobytes()
            builder.StartVector(1, len(raw), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            vector = builder.EndVector()
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)
