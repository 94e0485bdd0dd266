// RUN: tflquant-opt %s | filecheck %s
// RUN: tflquant-opt %s | tflquant-opt | filecheck %s
// RUN: tflquant-opt %s --print-op-generic | tflquant-opt | filecheck %s

// Round trip of the quant dialect: types, the stats attribute, and its three ops.

// CHECK-LABEL: func.func @types
// CHECK-SAME: tensor<4x!quant.uniform<i8:f32, 0.1:-3>>
// CHECK-SAME: tensor<2x3x!quant.uniform<i8<-127:127>:f32:0, {0.5, 0.25:1}>>
// CHECK-SAME: tensor<4x!quant.uniform<ui8:f32, 0.0078125:128>>
// CHECK-SAME: tensor<4x!quant.uniform<i16:f32, 3.0517578e-05>>
func.func @types(%a: tensor<4x!quant.uniform<i8:f32, 0.1:-3>>,
                 %b: tensor<2x3x!quant.uniform<i8<-127:127>:f32:0, {0.5, 0.25:1}>>,
                 %c: tensor<4x!quant.uniform<ui8:f32, 0.0078125:128>>,
                 %d: tensor<4x!quant.uniform<i16:f32, 3.0517578e-05:0>>) {
  func.return
}

// CHECK-LABEL: func.func @ops
// CHECK:      %[[S:.*]] = quant.stats %x, <-1.5, 6.0> : tensor<1x4xf32>
// CHECK-NEXT: %[[Q:.*]] = quant.qcast %[[S]] : tensor<1x4xf32> -> tensor<1x4x!quant.uniform<i8:f32, 0.03:-78>>
// CHECK-NEXT: %[[D:.*]] = quant.dcast %[[Q]] : tensor<1x4x!quant.uniform<i8:f32, 0.03:-78>> -> tensor<1x4xf32>
// CHECK-NEXT: %{{.*}} = quant.stats %[[D]], <1, [-1.0, -2.0], [1.0, 2.0]> : tensor<1x4xf32>
func.func @ops(%x: tensor<1x4xf32>) -> tensor<1x4xf32> {
  %s = quant.stats %x, <-1.5, 6.0> : tensor<1x4xf32>
  %q = quant.qcast %s : tensor<1x4xf32> -> tensor<1x4x!quant.uniform<i8:f32, 0.03:-78>>
  %d = quant.dcast %q : tensor<1x4x!quant.uniform<i8:f32, 0.03:-78>> -> tensor<1x4xf32>
  %p = quant.stats %d, <1, [-1.0, -2.0], [1.0, 2.0]> : tensor<1x4xf32>
  func.return %p : tensor<1x4xf32>
}
