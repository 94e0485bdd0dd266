// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p fold-constants | filecheck %s
// RUN: not tflquant-opt %s -p 'fold-constants{max-bytes=-1}' 2>&1 | filecheck %s --check-prefix=OPTION

// What fold-constants rejects: constant operands on which the op cannot run (an index out
// of range) and a static result type that contradicts what the op computes. LiteRT would
// fail on both at run time; the error names the op.
// CHECK: fold-constants: tfl.gather 'g' fails on its constant inputs
func.func @out_of_range() -> tensor<1x2xf32> {
  %p = "tfl.const"() <{value = dense<1.0> : tensor<3x2xf32>}> : () -> tensor<3x2xf32>
  %i = "tfl.const"() <{value = dense<[7]> : tensor<1xi32>}> : () -> tensor<1xi32>
  %g = "tfl.gather"(%p, %i) {names = ["g"]} : (tensor<3x2xf32>, tensor<1xi32>) -> tensor<1x2xf32>
  %r = "tfl.relu"(%g) : (tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %r : tensor<1x2xf32>
}

// -----

// CHECK: fold-constants: tfl.add 'bad' computes a result of shape [2] from its constant inputs but its type is tensor<3xf32>: the model is inconsistent
func.func @bad_type() -> tensor<3xf32> {
  %a = "tfl.const"() <{value = dense<[1.0, 2.0]> : tensor<2xf32>}> : () -> tensor<2xf32>
  %s = "tfl.add"(%a, %a) {names = ["bad"]} : (tensor<2xf32>, tensor<2xf32>) -> tensor<3xf32>
  %r = "tfl.relu"(%s) : (tensor<3xf32>) -> tensor<3xf32>
  func.return %r : tensor<3xf32>
}

// OPTION: fold-constants: max-bytes must be at least 0, got -1
