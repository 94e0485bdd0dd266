// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p legalize-for-micro | filecheck %s
// RUN: not tflquant-opt %s -p 'legalize-for-micro{approximate=true}' 2>&1 | filecheck %s --check-prefix=OPTION

// legalize-for-micro has no options.
// OPTION: bad pass pipeline 'legalize-for-micro{approximate=true}': Provided arguments ["approximate"] not found in expected arguments []

// A SELECT_V2 without its condition cannot be rewritten: the error names the op.
// CHECK: legalize-for-micro: tfl.select_v2 's' has 2 inputs and 1 outputs; it takes 3 and has 1
func.func @select_two_inputs(%a: tensor<1x3xi32>, %b: tensor<1x3xi32>) -> tensor<1x3xi32> {
  %y = "tfl.select_v2"(%a, %b) {names = ["s"]} : (tensor<1x3xi32>, tensor<1x3xi32>) -> tensor<1x3xi32>
  func.return %y : tensor<1x3xi32>
}

// -----

// A GELU with two inputs is rejected by the verifier before the pass runs.
// CHECK: IR is invalid after parsing: tfl.gelu takes at most 1 inputs (input), got 2
func.func @gelu_two_inputs(%x: tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>> {
  %y = "tfl.gelu"(%x, %x) {names = ["g"]} : (tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>, tensor<1x4x!quant.uniform<i8:f32, 0.05:-3>>) -> tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
  func.return %y : tensor<1x4x!quant.uniform<i8:f32, 0.04:-120>>
}
