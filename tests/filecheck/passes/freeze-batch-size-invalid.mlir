// RUN: tflquant-opt %s --verify-diagnostics -p freeze-batch-size | filecheck %s
// RUN: not tflquant-opt %s -p 'freeze-batch-size{size=0}' 2>&1 | filecheck %s --check-prefix=SIZE

// What freeze-batch-size rejects: a static dim that contradicts the shape the operands
// give once the batch is known (the model is inconsistent; freezing would hide it).
// CHECK: freeze-batch-size: tfl.reshape 'r' computes a result of shape [2, 2] from its operands but its type is tensor<?x3xf32>: the model is inconsistent
func.func @bad(%x: tensor<?x4xf32>) -> tensor<?x3xf32> {
  %s = "tfl.const"() <{value = dense<[-1, 2]> : tensor<2xi32>}> : () -> tensor<2xi32>
  %r = "tfl.reshape"(%x, %s) {names = ["r"]} : (tensor<?x4xf32>, tensor<2xi32>) -> tensor<?x3xf32>
  func.return %r : tensor<?x3xf32>
}

// SIZE: freeze-batch-size: size must be at least 1, got 0
