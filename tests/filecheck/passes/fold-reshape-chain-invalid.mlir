// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p fold-reshape-chain | filecheck %s
// RUN: not tflquant-opt %s -p 'fold-reshape-chain{no-such-option=1}' 2>&1 | filecheck %s --check-prefix=OPTION

// What fold-reshape-chain rejects: a RESHAPE whose constant shape operand contradicts its
// result type (folding would silently pick one of the two).
// CHECK: tfl.reshape 'b': shape operand [3, 4] does not match its result type tensor<4x3xf32>
func.func @bad_shape(%x: tensor<12xf32>) -> tensor<4x3xf32> {
  %s1 = "tfl.const"() <{value = dense<[2, 6]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %a = "tfl.reshape"(%x, %s1) : (tensor<12xf32>, tensor<2xi32>) -> tensor<2x6xf32>
  %s2 = "tfl.const"() <{value = dense<[3, 4]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %b = "tfl.reshape"(%a, %s2) {names = ["b"]} : (tensor<2x6xf32>, tensor<2xi32>) -> tensor<4x3xf32>
  func.return %b : tensor<4x3xf32>
}

// -----

// A malformed input is reported by the verifier before the pass runs.
// CHECK: tfl.reshape: 'names' must list one name per result
func.func @bad_names(%x: tensor<12xf32>) -> tensor<12xf32> {
  %s = "tfl.const"() <{value = dense<[12]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %a = "tfl.reshape"(%x, %s) {names = ["a", "b"]} : (tensor<12xf32>, tensor<1xi32>) -> tensor<12xf32>
  func.return %a : tensor<12xf32>
}

// OPTION: tflquant-opt: error: bad pass pipeline 'fold-reshape-chain{no-such-option=1}'
