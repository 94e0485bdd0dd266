// RUN: tflquant-opt %s -p quantize-control-flow | filecheck %s

// IF: operand x (0.02) is the argument of both branches, with its own type; the result is
// either branch's: RELU [0, 2.55] (0.01:-128) or NEG [-2.56, 2.54] (0.02:0), so their union
// [-2.56, 2.55] (0.020039216:0) for both returns and the IF; its reader keeps its 0.05 qcast.

// CHECK-LABEL: func.func @main
// CHECK:         %[[X:.*]] = quant.qcast %d : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.02>>
// CHECK-NEXT:    %[[R:.*]] = "tfl.opaque"(%c, %[[X]]) {{.*}} : (tensor<1xi1>, tensor<3x!quant.uniform<i8:f32, 0.02>>) -> tensor<3x!quant.uniform<i8:f32, 0.020039216>>
// CHECK-NEXT:    %[[RD:.*]] = quant.dcast %[[R]]
// CHECK-NEXT:    quant.qcast %[[RD]] : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.05>>

// CHECK-LABEL: func.func @then(%tx: tensor<3x!quant.uniform<i8:f32, 0.02>>) -> tensor<3x!quant.uniform<i8:f32, 0.020039216>>
// CHECK-NEXT:    %[[TX:.*]] = quant.dcast %tx
// CHECK-NEXT:    quant.qcast %[[TX]] : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.015>>
// CHECK:         %[[T:.*]] = quant.qcast %yd : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.020039216>>
// CHECK-NEXT:    func.return %[[T]]

// CHECK-LABEL: func.func @else(%ex: tensor<3x!quant.uniform<i8:f32, 0.02>>) -> tensor<3x!quant.uniform<i8:f32, 0.020039216>>
// CHECK:         %[[E:.*]] = quant.qcast %yd : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.020039216>>
// CHECK-NEXT:    func.return %[[E]]

func.func @main(%c: tensor<1xi1>, %x: tensor<3xf32>) -> tensor<3xf32> {
  %q = quant.qcast %x : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.02:0>>
  %d = quant.dcast %q : tensor<3x!quant.uniform<i8:f32, 0.02:0>> -> tensor<3xf32>
  %r = "tfl.opaque"(%c, %d) <{code = 118 : i32, version = 1 : i32, options_type = 92 : i32, options = {then_subgraph_index = 1 : i32, else_subgraph_index = 2 : i32}}> {names = ["picked"]} : (tensor<1xi1>, tensor<3xf32>) -> tensor<3xf32>
  %rq = quant.qcast %r : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.05:0>>
  %rd = quant.dcast %rq : tensor<3x!quant.uniform<i8:f32, 0.05:0>> -> tensor<3xf32>
  func.return %rd : tensor<3xf32>
}
func.func @then(%tx: tensor<3xf32>) -> tensor<3xf32> {
  %q = quant.qcast %tx : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.015:0>>
  %d = quant.dcast %q : tensor<3x!quant.uniform<i8:f32, 0.015:0>> -> tensor<3xf32>
  %y = "tfl.relu"(%d) {names = ["t_relu"]} : (tensor<3xf32>) -> tensor<3xf32>
  %yq = quant.qcast %y : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.01:-128>>
  %yd = quant.dcast %yq : tensor<3x!quant.uniform<i8:f32, 0.01:-128>> -> tensor<3xf32>
  func.return %yd : tensor<3xf32>
}
func.func @else(%ex: tensor<3xf32>) -> tensor<3xf32> {
  %y = "tfl.neg"(%ex) {names = ["e_neg"]} : (tensor<3xf32>) -> tensor<3xf32>
  %yq = quant.qcast %y : tensor<3xf32> -> tensor<3x!quant.uniform<i8:f32, 0.02:0>>
  %yd = quant.dcast %yq : tensor<3x!quant.uniform<i8:f32, 0.02:0>> -> tensor<3xf32>
  func.return %yd : tensor<3xf32>
}
