// RUN: tflquant-opt %s -p quantize-control-flow | filecheck %s

// Four values go around the loop (an int32 counter stays as it is):
// - x, passed through unchanged: its initial type (0.01);
// - h, from a constant 0.0 into a RELU whose output type is 0.02:-128: the body result's
//   type, the constant quantized with it (0.0 -> -128);
// - g, from [-1.28, 1.27] into the same RELU: the union [-1.28, 5.1] (0.025019607:-77);
// - y, without any range: float.
// The WHILE, the cond and body arguments, the body results and the WHILE results all carry
// the same type; the functions read their arguments through quant.dcast and return qcasts.

// CHECK-LABEL: func.func @main
// CHECK:         %[[X:.*]] = quant.qcast %d : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.01>>
// CHECK-NEXT:    %[[H0:.*]] = "tfl.const"() <{value = dense<-128> : tensor<1x2xi8>}> {names = ["h0"]} : () -> tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>
// CHECK-NEXT:    %[[G0:.*]] = quant.qcast %d : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.025019607:-77>>
// CHECK-NEXT:    %{{.*}}, %[[XF:.*]], %[[HF:.*]], %[[GF:.*]], %[[YF:.*]] = "tfl.opaque"(%i0, %[[X]], %[[H0]], %[[G0]], %y)
// CHECK-SAME:    -> (tensor<i32>, tensor<1x2x!quant.uniform<i8:f32, 0.01>>, tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>, tensor<1x2x!quant.uniform<i8:f32, 0.025019607:-77>>, tensor<1x2xf32>)
// CHECK-DAG:     %[[GD:.*]] = quant.dcast %[[GF]] : tensor<1x2x!quant.uniform<i8:f32, 0.025019607:-77>> -> tensor<1x2xf32>
// CHECK-DAG:     %[[HD:.*]] = quant.dcast %[[HF]] : tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>> -> tensor<1x2xf32>
// CHECK:         quant.qcast %[[HD]] : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>
// CHECK:         func.return %{{.*}}, %[[GD]], %[[YF]]

// CHECK-LABEL: func.func @cond
// CHECK-SAME:    (%ci: tensor<i32>, %cx: tensor<1x2x!quant.uniform<i8:f32, 0.01>>, %ch: tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>, %cg: tensor<1x2x!quant.uniform<i8:f32, 0.025019607:-77>>, %cy: tensor<1x2xf32>) -> tensor<i1>
// CHECK-NOT:     quant.dcast

// CHECK-LABEL: func.func @body
// CHECK-SAME:    -> (tensor<i32>, tensor<1x2x!quant.uniform<i8:f32, 0.01>>, tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>, tensor<1x2x!quant.uniform<i8:f32, 0.025019607:-77>>, tensor<1x2xf32>)
// CHECK:         %[[BH:.*]] = quant.dcast %bh
// CHECK:         quant.qcast %[[BH]] : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.015:-128>>
// CHECK:         %[[RX:.*]] = quant.qcast %bx_1 : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.01>>
// CHECK-NEXT:    %[[RH:.*]] = quant.qcast %rd : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>
// CHECK-NEXT:    %[[RG:.*]] = quant.qcast %g1d : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.025019607:-77>>
// CHECK-NEXT:    func.return %i1, %[[RX]], %[[RH]], %[[RG]], %y1

func.func @main(%x: tensor<1x2xf32>, %y: tensor<1x2xf32>) -> (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) {
  %q = quant.qcast %x : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.01:0>>
  %d = quant.dcast %q : tensor<1x2x!quant.uniform<i8:f32, 0.01:0>> -> tensor<1x2xf32>
  %i0 = "tfl.const"() <{value = dense<0> : tensor<i32>}> {names = ["i0"]} : () -> tensor<i32>
  %h0 = "tfl.const"() <{value = dense<0.0> : tensor<1x2xf32>}> {names = ["h0"]} : () -> tensor<1x2xf32>
  %w:5 = "tfl.opaque"(%i0, %d, %h0, %d, %y) <{code = 119 : i32, version = 1 : i32, options_type = 93 : i32, options = {cond_subgraph_index = 1 : i32, body_subgraph_index = 2 : i32}}> {names = ["i_final", "x_final", "h_final", "g_final", "y_final"]} : (tensor<i32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) -> (tensor<i32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>)
  %rq = quant.qcast %w#2 : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>
  %rd = quant.dcast %rq : tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>> -> tensor<1x2xf32>
  func.return %rd, %w#3, %w#4 : tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>
}
func.func @cond(%ci: tensor<i32>, %cx: tensor<1x2xf32>, %ch: tensor<1x2xf32>, %cg: tensor<1x2xf32>, %cy: tensor<1x2xf32>) -> tensor<i1> {
  %n = "tfl.const"() <{value = dense<3> : tensor<i32>}> {names = ["n"]} : () -> tensor<i32>
  %c = "tfl.less"(%ci, %n) {names = ["more"]} : (tensor<i32>, tensor<i32>) -> tensor<i1>
  func.return %c : tensor<i1>
}
func.func @body(%bi: tensor<i32>, %bx: tensor<1x2xf32>, %bh: tensor<1x2xf32>, %bg: tensor<1x2xf32>, %by: tensor<1x2xf32>) -> (tensor<i32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) {
  %q = quant.qcast %bh : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.015:-128>>
  %d = quant.dcast %q : tensor<1x2x!quant.uniform<i8:f32, 0.015:-128>> -> tensor<1x2xf32>
  %r = "tfl.relu"(%d) {names = ["h_next"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %rq = quant.qcast %r : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>
  %rd = quant.dcast %rq : tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>> -> tensor<1x2xf32>
  %gq = quant.qcast %bg : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.01:0>>
  %gd = quant.dcast %gq : tensor<1x2x!quant.uniform<i8:f32, 0.01:0>> -> tensor<1x2xf32>
  %g = "tfl.relu"(%gd) {names = ["g_next"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %g1q = quant.qcast %g : tensor<1x2xf32> -> tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>>
  %g1d = quant.dcast %g1q : tensor<1x2x!quant.uniform<i8:f32, 0.02:-128>> -> tensor<1x2xf32>
  %one = "tfl.const"() <{value = dense<1> : tensor<i32>}> {names = ["one"]} : () -> tensor<i32>
  %i1 = "tfl.add"(%bi, %one) <{fused_activation_function = "NONE"}> {names = ["i_next"]} : (tensor<i32>, tensor<i32>) -> tensor<i32>
  %y1 = "tfl.relu"(%by) {names = ["y_next"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  func.return %i1, %bx, %rd, %g1d, %y1 : tensor<i32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>
}
