// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'op-precision{ops="RELU=int16","nope=float"}' | filecheck %s
// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'op-precision{ops="RELU=int4"}' | filecheck %s --check-prefix=PREC
// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'op-precision{ops="w=int16"}' | filecheck %s --check-prefix=CONST

// A name that matches no output tensor or op type is an error (a typo must not go unnoticed).
// CHECK: op-precision: no op has the output tensor or op type 'nope'; name ops by an output tensor name (tflquant inspect lists them) or a TFLite op type such as SOFTMAX
// PREC: op-precision: 'RELU=int4': unknown precision 'int4'; choose one of int8, int16, float
// CONST: op-precision: 'w' names a constant (a weight), not an op; name the output tensor of the op that reads it
func.func @main(%x: tensor<1x3xf32> {tfl.name = "x"}) -> tensor<1x3xf32> {
  %w = "tfl.const"() <{value = dense<[1.0, 2.0, 3.0]> : tensor<3xf32>}> {names = ["w"]} : () -> tensor<3xf32>
  %m = "tfl.mul"(%x, %w) <{fused_activation_function = "NONE"}> {names = ["m"]} : (tensor<1x3xf32>, tensor<3xf32>) -> tensor<1x3xf32>
  %r = "tfl.relu"(%m) {names = ["relu"]} : (tensor<1x3xf32>) -> tensor<1x3xf32>
  func.return %r : tensor<1x3xf32>
}
