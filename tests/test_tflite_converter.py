"""The TFLite -> ONNX conversion's additions to tflite2onnx, on a model built here with the flatbuffers
schema's own builder (expo's FaceAntiSpoofing net, the one registry model using LEAKY_RELU, fails later
on a scalar tensor, so it cannot serve as the check)."""

from __future__ import annotations

import importlib

import flatbuffers
import numpy as np
import onnxruntime as ort
from tflite import BuiltinOperator, BuiltinOptions, TensorType

from faceprint.zoo.tflite import tflite_to_onnx

Model, SubGraph, Tensor, Operator, OperatorCode, Buffer, LeakyReluOptions = (
    importlib.import_module(f"tflite.{m}")  # the builder functions live in the modules the classes shadow
    for m in ("Model", "SubGraph", "Tensor", "Operator", "OperatorCode", "Buffer", "LeakyReluOptions"))


def _ints(b: flatbuffers.Builder, start, values) -> int:
    start(b, len(values))
    for v in reversed(values):
        b.PrependInt32(v)
    return b.EndVector()


def _offsets(b: flatbuffers.Builder, start, offsets) -> int:
    start(b, len(offsets))
    for o in reversed(offsets):
        b.PrependUOffsetTRelative(o)
    return b.EndVector()


def leaky_relu_model(alpha: float, shape=(1, 2, 3, 4)) -> bytes:
    """A one-op .tflite file: y = LEAKY_RELU(x, alpha), float32."""
    b = flatbuffers.Builder(1024)
    tensors = []
    for name in (b.CreateString("x"), b.CreateString("y")):
        dims = _ints(b, Tensor.StartShapeVector, list(shape))
        Tensor.Start(b)
        Tensor.AddShape(b, dims)
        Tensor.AddType(b, TensorType.FLOAT32)
        Tensor.AddBuffer(b, 0)
        Tensor.AddName(b, name)
        tensors.append(Tensor.End(b))
    LeakyReluOptions.Start(b)
    LeakyReluOptions.AddAlpha(b, alpha)
    options = LeakyReluOptions.End(b)
    ins, outs = _ints(b, Operator.StartInputsVector, [0]), _ints(b, Operator.StartOutputsVector, [1])
    Operator.Start(b)
    Operator.AddOpcodeIndex(b, 0)
    Operator.AddInputs(b, ins)
    Operator.AddOutputs(b, outs)
    Operator.AddBuiltinOptionsType(b, BuiltinOptions.LeakyReluOptions)
    Operator.AddBuiltinOptions(b, options)
    op = Operator.End(b)
    tensor_vec, op_vec = _offsets(b, SubGraph.StartTensorsVector, tensors), _offsets(b, SubGraph.StartOperatorsVector, [op])
    gin, gout = _ints(b, SubGraph.StartInputsVector, [0]), _ints(b, SubGraph.StartOutputsVector, [1])
    SubGraph.Start(b)
    SubGraph.AddTensors(b, tensor_vec)
    SubGraph.AddOperators(b, op_vec)
    SubGraph.AddInputs(b, gin)
    SubGraph.AddOutputs(b, gout)
    graph = SubGraph.End(b)
    OperatorCode.Start(b)
    OperatorCode.AddBuiltinCode(b, BuiltinOperator.LEAKY_RELU)
    OperatorCode.AddDeprecatedBuiltinCode(b, BuiltinOperator.LEAKY_RELU)
    OperatorCode.AddVersion(b, 1)
    code = OperatorCode.End(b)
    Buffer.Start(b)
    empty = Buffer.End(b)
    codes, graphs = _offsets(b, Model.StartOperatorCodesVector, [code]), _offsets(b, Model.StartSubgraphsVector, [graph])
    buffers = _offsets(b, Model.StartBuffersVector, [empty])
    Model.Start(b)
    Model.AddVersion(b, 3)
    Model.AddOperatorCodes(b, codes)
    Model.AddSubgraphs(b, graphs)
    Model.AddBuffers(b, buffers)
    b.Finish(Model.End(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def test_leaky_relu_converts_with_its_alpha(tmp_path):
    path = tmp_path / "leaky.tflite"
    path.write_bytes(leaky_relu_model(0.3))
    session = ort.InferenceSession(tflite_to_onnx(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).normal(size=session.get_inputs()[0].shape).astype(np.float32)
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(y, np.where(x > 0, x, 0.3 * x), rtol=1e-6)
