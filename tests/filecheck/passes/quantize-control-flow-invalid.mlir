// RUN: tflquant-opt %s --split-input-file --verify-diagnostics -p quantize-control-flow | filecheck %s

// A WHILE must name subgraphs the module has.
// CHECK: quantize-control-flow: WHILE 'i_final' names subgraph 5, which the module does not have
func.func @main(%x: tensor<1x2xf32>) -> tensor<1x2xf32> {
  %i0 = "tfl.const"() <{value = dense<0> : tensor<i32>}> {names = ["i0"]} : () -> tensor<i32>
  %w:2 = "tfl.opaque"(%i0, %x) <{code = 119 : i32, version = 1 : i32, options_type = 93 : i32, options = {cond_subgraph_index = 5 : i32, body_subgraph_index = 0 : i32}}> {names = ["i_final", "x_final"]} : (tensor<i32>, tensor<1x2xf32>) -> (tensor<i32>, tensor<1x2xf32>)
  func.return %w#1 : tensor<1x2xf32>
}
