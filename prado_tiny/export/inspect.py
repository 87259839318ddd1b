"""Scan a .tflite flatbuffer: every op with its input/output dtypes; is the model builtin-only int8?

Every exported model of prado-tiny must run on a stock LiteRT interpreter (no custom op, no Flex
op) and be integer throughout. The converter does not always say when it fell back to float
(../shared/STACK.md: a Keras 3 LayerNormalization left a float NEG op, a tfmot-annotated custom
layer gave 30 QUANTIZE/DEQUANTIZE pairs), so the flatbuffer itself is the judge.

`check_builtin_int8(path)` returns a `ModelReport` whose `violations` list:

* custom ops (any `CUSTOM` opcode; `custom:<code>`),
* Flex ops (custom ops whose code starts with `Flex`: TensorFlow kernels, need the Flex delegate),
* float ops: any op with a float (float16/32/64, bfloat16, complex) input or output tensor, which
  includes a QUANTIZE taking float or a DEQUANTIZE producing float, and float constants such as
  the weights of a hybrid-quantized op,
* float model inputs or outputs (of any subgraph).

Integer tensors of every width are fine (int32 codepoints in, int8 out; int32 biases). Raises
`NotBuiltinInt8Error` when asked to (`raise_on_violation=True`).

`fold_exact_int8_casts(model)` is the one rewrite the hashing projections need (their integer
features reach int8 through CAST + QUANTIZE; see its docstring).

Command line: `python -m prado_tiny.export.inspect model.tflite [--ops]`.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple, Union

FLOAT_TYPES = frozenset({"FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16", "COMPLEX64", "COMPLEX128"})


class NotBuiltinInt8Error(ValueError):
    """The model holds custom, Flex or float ops."""

    def __init__(self, report: "ModelReport"):
        self.report = report
        super().__init__(f"{report.source}: not a builtin-only integer model:\n  "
                         + "\n  ".join(report.violations))


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: Tuple[int, ...]
    constant: bool
    scale: Optional[Tuple[float, ...]] = None
    zero_point: Optional[Tuple[int, ...]] = None

    def __str__(self) -> str:
        shape = "x".join(str(d) for d in self.shape) or "scalar"
        quant = ""
        if self.scale:
            quant = f" q({self.scale[0]:.6g},{self.zero_point[0] if self.zero_point else 0}" + (
                f",x{len(self.scale)}" if len(self.scale) > 1 else "") + ")"
        return f"{self.dtype.lower()}[{shape}]{' const' if self.constant else ''}{quant}"


@dataclasses.dataclass(frozen=True)
class OpInfo:
    subgraph: int
    index: int
    name: str  # builtin name (e.g. FULLY_CONNECTED) or "custom:<code>"
    kind: str  # "builtin", "custom" or "flex"
    inputs: Tuple[TensorInfo, ...]
    outputs: Tuple[TensorInfo, ...]

    @property
    def float_tensors(self) -> List[TensorInfo]:
        return [t for t in self.inputs + self.outputs if t.dtype in FLOAT_TYPES]

    def __str__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.outputs))
        where = f"{self.subgraph}:{self.index}" if self.subgraph else str(self.index)
        return f"#{where} {self.name}({ins}) -> {outs}"


@dataclasses.dataclass
class ModelReport:
    source: str
    ops: List[OpInfo]
    inputs: List[TensorInfo]
    outputs: List[TensorInfo]
    subgraph_io_float: List[str]
    size_bytes: int

    @property
    def custom_ops(self) -> List[OpInfo]:
        return [op for op in self.ops if op.kind == "custom"]

    @property
    def flex_ops(self) -> List[OpInfo]:
        return [op for op in self.ops if op.kind == "flex"]

    @property
    def float_ops(self) -> List[OpInfo]:
        return [op for op in self.ops if op.float_tensors]

    @property
    def op_counts(self) -> Dict[str, int]:
        return dict(collections.Counter(op.name for op in self.ops))

    @property
    def violations(self) -> List[str]:
        out = [f"custom op {op}" for op in self.custom_ops]
        out += [f"Flex op {op}" for op in self.flex_ops]
        out += [f"float op {op}" for op in self.float_ops]
        out += [f"float model boundary tensor {t}" for t in self.subgraph_io_float]
        return out

    @property
    def ok(self) -> bool:
        return not self.violations

    def summary(self, ops: bool = False) -> str:
        lines = [f"{self.source}: {self.size_bytes} bytes, {len(self.ops)} ops",
                 "inputs: " + ", ".join(map(str, self.inputs)),
                 "outputs: " + ", ".join(map(str, self.outputs)),
                 "op counts: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.op_counts.items())),
                 f"custom ops: {len(self.custom_ops)}, Flex ops: {len(self.flex_ops)}, "
                 f"float ops: {len(self.float_ops)}, float boundary tensors: "
                 f"{len(self.subgraph_io_float)}",
                 "builtin-only integer model: " + ("yes" if self.ok else "NO")]
        if ops:
            lines += [str(op) for op in self.ops]
        lines += self.violations
        return "\n".join(lines)


def _enum_names(enum_cls) -> Dict[int, str]:
    return {v: k for k, v in vars(enum_cls).items() if not k.startswith("_") and isinstance(v, int)}


def _schema():
    from ai_edge_litert import schema_py_generated as schema
    return schema


def _read(model: Union[str, os.PathLike, bytes, bytearray]) -> Tuple[bytes, str]:
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "<bytes>"
    with open(model, "rb") as f:
        return f.read(), os.fspath(model)


def inspect_model(model: Union[str, os.PathLike, bytes, bytearray]) -> ModelReport:
    """Reads a .tflite (path or bytes) into a `ModelReport` (ops in execution order)."""
    data, source = _read(model)
    schema = _schema()
    if not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ValueError(f"{source}: not a TFLite flatbuffer (no TFL3 identifier)")
    m = schema.Model.GetRootAsModel(data, 0)
    op_names = _enum_names(schema.BuiltinOperator)
    type_names = _enum_names(schema.TensorType)
    custom_code = schema.BuiltinOperator.CUSTOM

    codes = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        if code == custom_code:
            cc = (oc.CustomCode() or b"").decode("utf-8", "replace")
            codes.append((f"custom:{cc}", "flex" if cc.startswith("Flex") else "custom"))
        else:
            codes.append((op_names.get(code, f"BUILTIN_{code}"), "builtin"))

    def buffer_nonempty(idx: int) -> bool:
        if idx <= 0 or idx >= m.BuffersLength():
            return False
        buf = m.Buffers(idx)
        return buf.DataLength() > 0 or buf.Size() > 0

    ops: List[OpInfo] = []
    inputs: List[TensorInfo] = []
    outputs: List[TensorInfo] = []
    io_float: List[str] = []
    for s in range(m.SubgraphsLength()):
        sg = m.Subgraphs(s)
        tensors = []
        for t in range(sg.TensorsLength()):
            ten = sg.Tensors(t)
            q = ten.Quantization()
            scale = zp = None
            if q is not None and q.ScaleLength():
                scale = tuple(float(v) for v in q.ScaleAsNumpy())
                zp = tuple(int(v) for v in q.ZeroPointAsNumpy()) if q.ZeroPointLength() else None
            tensors.append(TensorInfo(
                name=(ten.Name() or b"").decode("utf-8", "replace"),
                dtype=type_names.get(ten.Type(), str(ten.Type())),
                shape=tuple(int(d) for d in ten.ShapeAsNumpy()) if ten.ShapeLength() else (),
                constant=buffer_nonempty(ten.Buffer()), scale=scale, zero_point=zp))
        sub_in = [tensors[i] for i in sg.InputsAsNumpy()] if sg.InputsLength() else []
        sub_out = [tensors[i] for i in sg.OutputsAsNumpy()] if sg.OutputsLength() else []
        if s == 0:
            inputs, outputs = sub_in, sub_out
        io_float += [f"subgraph {s} {t.name}: {t}" for t in sub_in + sub_out if t.dtype in FLOAT_TYPES]
        for o in range(sg.OperatorsLength()):
            op = sg.Operators(o)
            name, kind = codes[op.OpcodeIndex()]
            ins = tuple(tensors[i] for i in (op.InputsAsNumpy() if op.InputsLength() else []) if i >= 0)
            outs = tuple(tensors[i] for i in (op.OutputsAsNumpy() if op.OutputsLength() else []) if i >= 0)
            ops.append(OpInfo(s, o, name, kind, ins, outs))
    return ModelReport(source=source, ops=ops, inputs=inputs, outputs=outputs,
                       subgraph_io_float=io_float, size_bytes=len(data))


def check_builtin_int8(model: Union[str, os.PathLike, bytes, bytearray],
                       raise_on_violation: bool = False) -> ModelReport:
    """Scans `model`; the report's `violations` lists custom, Flex and float ops (empty = ok).

    With `raise_on_violation=True`, raises `NotBuiltinInt8Error` instead of returning a report
    that has violations.
    """
    report = inspect_model(model)
    if raise_on_violation and not report.ok:
        raise NotBuiltinInt8Error(report)
    return report


# ---------------------------------------------------------------------------------------------
# The one rewrite the hashing projections need.

#: Tensor-name marker of the CASTs that `fold_exact_int8_casts` may fold (see
#: `prado_tiny.layers.minhash_projection.exact_int8`).
EXACT_INT8_MARKER = "exact_int8_cast"


def fold_exact_int8_casts(model: Union[str, os.PathLike, bytes, bytearray],
                          marker: str = EXACT_INT8_MARKER) -> bytes:
    """Folds CAST(int -> float32) + QUANTIZE(float32 -> int8, scale 1, zero point 0) into one
    CAST(int -> int8), for the CASTs whose output tensor name contains `marker`.

    The converter cannot produce an int8 tensor from integers without going through float: a
    projection layer's small integer features (counts, ternary values) come out as a float CAST
    and a QUANTIZE. With scale 1 and zero point 0 the pair computes exactly what an int8 CAST
    computes, provided the values lie in [-128, 127] (the layers guarantee it; that is why only
    marked CASTs are folded). Returns the rewritten flatbuffer; raises if a marked pair does not
    have this exact form.
    """
    from ai_edge_litert.tools import flatbuffer_utils as fu
    data, source = _read(model)
    schema = _schema()
    m = fu.read_model_from_bytearray(bytearray(data))
    op_of = {i: fu.get_builtin_code_from_operator_code(oc) for i, oc in enumerate(m.operatorCodes)}
    cast_code, quant_code = schema.BuiltinOperator.CAST, schema.BuiltinOperator.QUANTIZE
    int_types = {schema.TensorType.INT32, schema.TensorType.INT16, schema.TensorType.INT8,
                 schema.TensorType.UINT8, schema.TensorType.INT64}
    folded = 0
    for s, sg in enumerate(m.subgraphs):
        producer = {}
        uses = collections.Counter()
        for i, op in enumerate(sg.operators):
            for t in op.outputs:
                producer[t] = i
            for t in op.inputs:
                if t >= 0:
                    uses[t] += 1
        for t in sg.outputs:
            uses[t] += 1
        dropped_ops, orphans = set(), set()
        for qi, q in enumerate(sg.operators):
            if op_of[q.opcodeIndex] != quant_code:
                continue
            f, o = q.inputs[0], q.outputs[0]
            ci = producer.get(f)
            if ci is None or op_of[sg.operators[ci].opcodeIndex] != cast_code:
                continue
            ft, ot = sg.tensors[f], sg.tensors[o]
            name = ft.name.decode("utf-8", "replace") if isinstance(ft.name, bytes) else str(ft.name)
            if marker not in name:
                continue
            cast = sg.operators[ci]
            src = sg.tensors[cast.inputs[0]]
            qp = ot.quantization
            scale = list(qp.scale) if qp is not None and qp.scale is not None else []
            zero = list(qp.zeroPoint) if qp is not None and qp.zeroPoint is not None else [0]
            if not (ft.type == schema.TensorType.FLOAT32 and ot.type == schema.TensorType.INT8
                    and src.type in int_types and scale == [1.0] and all(z == 0 for z in zero)
                    and uses[f] == 1):
                raise ValueError(f"{source}: marked cast {name!r} is not CAST(int)+QUANTIZE to int8 "
                                 f"with scale 1 and zero point 0 (scale={scale}, zero={zero})")
            cast.outputs = [o]
            if isinstance(cast.builtinOptions, schema.CastOptionsT):
                cast.builtinOptions.outDataType = schema.TensorType.INT8
            dropped_ops.add(qi)
            orphans.add(f)
            folded += 1
        # The converter may requantize the exact tensor to a calibrated range through DEQUANTIZE
        # + QUANTIZE (it does for a model output, and for a 2-D FULLY_CONNECTED input; a rank-3
        # [batch, tokens, features] input, as the projections give, is consumed as is). At the
        # model output the exact tensor becomes the output; elsewhere the pair becomes one int8
        # -> int8 QUANTIZE (a requantization, no float tensor).
        exact = {sg.operators[i].outputs[0] for i in dropped_ops}
        replace = {}
        for di, d in enumerate(sg.operators):
            if op_of[d.opcodeIndex] != schema.BuiltinOperator.DEQUANTIZE or d.inputs[0] not in exact:
                continue
            f = d.outputs[0]
            users = [i for i, op in enumerate(sg.operators) if f in op.inputs]
            if uses[f] != 1 or len(users) != 1 or op_of[sg.operators[users[0]].opcodeIndex] != quant_code:
                continue
            requant = sg.operators[users[0]]
            out = requant.outputs[0]
            dropped_ops.add(di)
            orphans.add(f)
            if out in sg.outputs and uses[out] == 1:
                replace[out] = d.inputs[0]
                dropped_ops.add(users[0])
                orphans.add(out)
            else:
                requant.inputs = [d.inputs[0]]
        if dropped_ops:
            sg.operators = [op for i, op in enumerate(sg.operators) if i not in dropped_ops]
            _drop_tensors(m, s, orphans, replace)
    if not folded:
        return bytes(data)
    return bytes(fu.convert_object_to_bytearray(m))


def _drop_tensors(m, subgraph_index: int, drop: set, replace: Optional[dict] = None) -> None:
    """Removes unused tensors from a subgraph, renumbering every reference to the rest
    (references to a key of `replace` go to its value)."""
    sg = m.subgraphs[subgraph_index]
    keep = [i for i in range(len(sg.tensors)) if i not in drop]
    new_index = {old: new for new, old in enumerate(keep)}
    for old, new in (replace or {}).items():
        new_index[old] = new_index[new]

    def remap(seq):
        return [new_index[t] if t >= 0 else t for t in seq]

    sg.tensors = [sg.tensors[i] for i in keep]
    for op in sg.operators:
        op.inputs = remap(op.inputs)
        op.outputs = remap(op.outputs)
        if op.intermediates:
            op.intermediates = remap(op.intermediates)
    sg.inputs = remap(sg.inputs)
    sg.outputs = remap(sg.outputs)
    for sig in m.signatureDefs or []:
        if sig.subgraphIndex != subgraph_index:
            continue
        for tm in list(sig.inputs or []) + list(sig.outputs or []):
            tm.tensorIndex = new_index[tm.tensorIndex]


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    show_ops = "--ops" in argv
    paths = [a for a in argv if a != "--ops"]
    if not paths:
        print("usage: python -m prado_tiny.export.inspect MODEL.tflite [...] [--ops]", file=sys.stderr)
        return 2
    status = 0
    for path in paths:
        report = check_builtin_int8(path)
        print(report.summary(ops=show_ops))
        status |= 0 if report.ok else 1
    return status


if __name__ == "__main__":
    sys.exit(main())
