// RUN: tflquant-opt %s --split-input-file --verify-diagnostics | filecheck %s

// Malformed tfl ops are rejected by the verifier with a message naming the problem.

func.func @unknown_option(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "tfl.add"(%x, %x) <{no_such_option = 1 : i32}> : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}
// CHECK: no_such_option

// -----

func.func @bad_enum(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "tfl.add"(%x, %x) <{fused_activation_function = "SWISH"}> : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}
// CHECK: SWISH

// -----

func.func @too_many_inputs(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "tfl.relu"(%x, %x) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}
// CHECK: tfl.relu takes at most 1 inputs (input), got 2

// -----

func.func @names_count(%x: tensor<4xf32>) -> tensor<4xf32> {
  %y = "tfl.relu"(%x) {names = ["a", "b"]} : (tensor<4xf32>) -> tensor<4xf32>
  func.return %y : tensor<4xf32>
}
// CHECK: tfl.relu: 'names' must list one name per result

// -----

func.func @const_shape() -> tensor<3xf32> {
  %c = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<3xf32>
  func.return %c : tensor<3xf32>
}
// CHECK: tfl.const payload shape (2,) differs from result shape (3,)

// -----

func.func @const_quant_storage() -> tensor<2x!quant.uniform<i8:f32, 0.5>> {
  %c = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2x!quant.uniform<i8:f32, 0.5>>
  func.return %c : tensor<2x!quant.uniform<i8:f32, 0.5>>
}
// CHECK: tfl.const payload element f32 does not match result element i8
