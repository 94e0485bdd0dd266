// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias,set-io-types{type=int16}' | filecheck %s
// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p 'insert-fake-quant,propagate-scales,rewrite-integer,legalize-float-fallback,quantize-bias,set-io-types{type=int8}' | filecheck %s --check-prefix=FLOAT
// RUN: not tflquant-opt %s -p 'set-io-types{type=float16}' 2>&1 | filecheck %s --check-prefix=OPTION

// OPTION: set-io-types: type must be one of int8, uint8, int16, got 'float16'

// int16 I/O needs 16x8 activations.
func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4xf32>
  %r = "tfl.relu"(%xs) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %rs = quant.stats %r, <0.0, 1.0> : tensor<1x4xf32>
  func.return %rs : tensor<1x4xf32>
}
// CHECK: set-io-types: model input tensor 'x' is quantized to i8 but the requested I/O type is int16
// FLOAT: func.func @main(%x: tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-1>>

// -----

// A relu without calibration data stays float: its calibrated input becomes int8 (read
// through a DEQUANTIZE), but its output has no range and cannot become an integer tensor.
func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4xf32>
  %r = "tfl.relu"(%xs) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  func.return %r : tensor<1x4xf32>
}
// FLOAT: set-io-types: model output tensor 'relu' is computed in float and has no calibrated range; it cannot become int8: calibrate it, or keep float model I/O

// -----

// An output computed by a float op (CUMSUM has no integer kernel) without a calibrated range
// cannot become an integer tensor.
func.func @main(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4xf32>
  %r = "tfl.relu"(%xs) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %rs = quant.stats %r, <0.0, 1.0> : tensor<1x4xf32>
  %ax = "tfl.const"() <{value = dense<1> : tensor<i32>}> : () -> tensor<i32>
  %c = "tfl.cumsum"(%rs, %ax) {names = ["cumsum"]} : (tensor<1x4xf32>, tensor<i32>) -> tensor<1x4xf32>
  func.return %c : tensor<1x4xf32>
}
// FLOAT: set-io-types: model output tensor 'cumsum' is computed in float and has no calibrated range; it cannot become int8
