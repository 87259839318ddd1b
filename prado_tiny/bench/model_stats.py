"""Size, parameter count and multiply-accumulates per inference, read from a .tflite flatbuffer.

Nothing is run: the figures come from tensor shapes (`prado_tiny.export.inspect` parses the
flatbuffer). Counted as MACs: the ops that hold nearly all of a network's arithmetic,

* FULLY_CONNECTED: rows x in x out (weights `[out, in]`; rows = input elements / in),
* BATCH_MATMUL: output elements x K (K the contracted dimension, after `adj_x`),
* CONV_2D: output elements x kh x kw x in_channels (filter `[out, kh, kw, in]`),
* DEPTHWISE_CONV_2D: output elements x kh x kw,
* TRANSPOSE_CONV: input elements x kh x kw x out_channels,
* CONV_3D: output elements x kd x kh x kw x in_channels.

Element-wise ops (ADD, MUL, ...) and lookups (GATHER) are not MACs and are left out.

Parameters: every element of a constant buffer that an op reads, counted once, except integer
constants of 32 or 64 bits that are not a bias (shapes, axes, hashing constants: structure, not
weights). An int8 embedding table read by GATHER counts; the int32 bias of FULLY_CONNECTED counts.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Dict, Union

import numpy as np

from prado_tiny.export.inspect import inspect_model

_WIDE_INT = frozenset({"INT32", "INT64", "UINT32", "UINT64"})
# Ops whose input 2 is a bias (counted as parameters even though it is int32).
_BIAS_OPS = frozenset({"FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_3D"})


@dataclasses.dataclass(frozen=True)
class ModelStats:
    """What the flatbuffer says about a model.

    Attributes:
      size_bytes: the file's size.
      params: parameter count (see the module docstring).
      macs: multiply-accumulates per inference of the matmul/conv ops.
      macs_by_op: the same, per op name.
      ops: number of operators (all subgraphs).
      input_shapes / input_dtypes: of subgraph 0's inputs.
    """

    size_bytes: int
    params: int
    macs: int
    macs_by_op: Dict[str, int]
    ops: int
    input_shapes: list
    input_dtypes: list

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _prod(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _flatbuffer_facts(data: bytes):
    """-> (`(subgraph, op) -> adj_x` of every BATCH_MATMUL, `(subgraph, op) -> [(input position,
    buffer index, dtype, shape)]` of the constant inputs).

    Buffers identify constants: exported models may drop tensor names, so names cannot.
    """
    from ai_edge_litert import schema_py_generated as schema

    type_names = {v: k for k, v in vars(schema.TensorType).items()
                  if not k.startswith("_") and isinstance(v, int)}
    m = schema.Model.GetRootAsModel(data, 0)

    def nonempty(b: int) -> bool:
        if b <= 0 or b >= m.BuffersLength():
            return False
        buf = m.Buffers(b)
        return buf.DataLength() > 0 or buf.Size() > 0

    adj, consts = {}, {}
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            if op.BuiltinOptionsType() == schema.BuiltinOptions.BatchMatMulOptions:
                table = op.BuiltinOptions()
                opts = schema.BatchMatMulOptions()
                opts.Init(table.Bytes, table.Pos)
                adj[(s, o)] = bool(opts.AdjX())
            found = []
            for pos, t in enumerate(op.InputsAsNumpy() if op.InputsLength() else []):
                if t < 0:
                    continue
                ten = sg.Tensors(int(t))
                if nonempty(ten.Buffer()):
                    shape = tuple(int(d) for d in ten.ShapeAsNumpy()) if ten.ShapeLength() else ()
                    found.append((pos, ten.Buffer(), type_names.get(ten.Type(), "?"), shape))
            consts[(s, o)] = found
    return adj, consts


def op_macs(op, adj_x: bool = False) -> int:
    """MACs of one `OpInfo` (0 for ops that are not matmul/conv, or whose shapes are unknown)."""
    try:
        if op.name == "FULLY_CONNECTED":
            x, w = op.inputs[0].shape, op.inputs[1].shape
            out_dim, in_dim = w[0], w[-1]
            return (_prod(x) // max(in_dim, 1)) * in_dim * out_dim
        if op.name == "BATCH_MATMUL":
            a = op.inputs[0].shape
            k = a[-2] if adj_x else a[-1]
            return _prod(op.outputs[0].shape) * k
        if op.name == "CONV_2D":
            f = op.inputs[1].shape  # [out, kh, kw, in]
            return _prod(op.outputs[0].shape) * f[1] * f[2] * f[3]
        if op.name == "DEPTHWISE_CONV_2D":
            f = op.inputs[1].shape  # [1, kh, kw, out]
            return _prod(op.outputs[0].shape) * f[1] * f[2]
        if op.name == "TRANSPOSE_CONV":
            f = op.inputs[1].shape  # [out, kh, kw, in]; input 2 is the data
            return _prod(op.inputs[2].shape) * f[1] * f[2] * f[0]
        if op.name == "CONV_3D":
            f = op.inputs[1].shape  # [kd, kh, kw, in, out]
            return _prod(op.outputs[0].shape) * f[0] * f[1] * f[2] * f[3]
    except (IndexError, TypeError):
        return 0  # a shape the converter left unknown: no figure rather than a wrong one
    return 0


def model_stats(model: Union[str, "os.PathLike[str]", bytes]) -> ModelStats:
    """Reads size, parameters and MACs of a .tflite (path or bytes).

    Args:
      model: a .tflite path or its bytes.

    Returns:
      A `ModelStats`.

    Raises:
      ValueError: not a TFLite flatbuffer (the message names the file).
    """
    if isinstance(model, (bytes, bytearray)):
        data = bytes(model)
    else:
        with open(model, "rb") as f:
            data = f.read()
    report = inspect_model(data)
    adj, consts = _flatbuffer_facts(data)
    macs_by_op: Dict[str, int] = {}
    seen = set()
    params = 0
    for op in report.ops:
        n = op_macs(op, adj.get((op.subgraph, op.index), False))
        if n:
            macs_by_op[op.name] = macs_by_op.get(op.name, 0) + n
        for pos, buffer, dtype, shape in consts.get((op.subgraph, op.index), []):
            if buffer in seen:
                continue  # one buffer shared by several tensors or ops: stored once
            if dtype in _WIDE_INT and not (op.name in _BIAS_OPS and pos == 2):
                continue
            seen.add(buffer)
            params += _prod(shape)
    return ModelStats(size_bytes=len(data), params=int(params), macs=int(sum(macs_by_op.values())),
                      macs_by_op=macs_by_op, ops=len(report.ops),
                      input_shapes=[list(t.shape) for t in report.inputs],
                      input_dtypes=[t.dtype for t in report.inputs])
