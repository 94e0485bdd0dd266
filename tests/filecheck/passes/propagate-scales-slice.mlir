// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant,propagate-scales | filecheck %s

// A value read only by a slice with constant bounds takes the slice output's range: what
// the slice drops never reaches the model (here the input spans [-4, 4], the kept centre
// [-1, 1]: scale 2/255 instead of 8/255; the dropped values saturate).
// CHECK-LABEL: func.func @slice_only
// CHECK:      quant.qcast %x : tensor<1x8xf32> -> tensor<1x8x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK:      "tfl.strided_slice"
// CHECK-NEXT: quant.qcast %y : tensor<1x4xf32> -> tensor<1x4x!quant.uniform<i8:f32, 0.007843138:-1>>
func.func @slice_only(%x: tensor<1x8xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x8xf32>
  %b = "tfl.const"() <{value = dense<[0, 2]> : tensor<2xi32>}> {names = ["begin"]} : () -> tensor<2xi32>
  %e = "tfl.const"() <{value = dense<[1, 6]> : tensor<2xi32>}> {names = ["end"]} : () -> tensor<2xi32>
  %s = "tfl.const"() <{value = dense<1> : tensor<2xi32>}> {names = ["strides"]} : () -> tensor<2xi32>
  %y = "tfl.strided_slice"(%xs, %b, %e, %s) {names = ["centre"]} : (tensor<1x8xf32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) -> tensor<1x4xf32>
  %ys = quant.stats %y, <-1.0, 1.0> : tensor<1x4xf32>
  func.return %ys : tensor<1x4xf32>
}

// -----

// The input is read by another op too: its range counts (the union, as before).
// CHECK-LABEL: func.func @slice_and_more
// CHECK:      quant.qcast %x : tensor<1x8xf32> -> tensor<1x8x!quant.uniform<i8:f32, 0.03137255:-1>>
// CHECK:      "tfl.strided_slice"
// CHECK-NEXT: quant.qcast %y : tensor<1x4xf32> -> tensor<1x4x!quant.uniform<i8:f32, 0.03137255:-1>>
func.func @slice_and_more(%x: tensor<1x8xf32> {tfl.name = "x"}) -> (tensor<1x4xf32>, tensor<1x8xf32>) {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x8xf32>
  %b = "tfl.const"() <{value = dense<[0, 2]> : tensor<2xi32>}> {names = ["begin"]} : () -> tensor<2xi32>
  %e = "tfl.const"() <{value = dense<[1, 6]> : tensor<2xi32>}> {names = ["end"]} : () -> tensor<2xi32>
  %s = "tfl.const"() <{value = dense<1> : tensor<2xi32>}> {names = ["strides"]} : () -> tensor<2xi32>
  %y = "tfl.strided_slice"(%xs, %b, %e, %s) {names = ["centre"]} : (tensor<1x8xf32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) -> tensor<1x4xf32>
  %ys = quant.stats %y, <-1.0, 1.0> : tensor<1x4xf32>
  %r = "tfl.relu"(%xs) {names = ["relu"]} : (tensor<1x8xf32>) -> tensor<1x8xf32>
  %rs = quant.stats %r, <0.0, 4.0> : tensor<1x8xf32>
  func.return %ys, %rs : tensor<1x4xf32>, tensor<1x8xf32>
}

// -----

// Bounds computed at run time: the input's range counts.
// CHECK-LABEL: func.func @dynamic_bounds
// CHECK:      quant.qcast %x : tensor<1x8xf32> -> tensor<1x8x!quant.uniform<i8:f32, 0.03137255:-1>>
func.func @dynamic_bounds(%x: tensor<1x8xf32> {tfl.name = "x"}, %b: tensor<2xi32> {tfl.name = "begin"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x8xf32>
  %e = "tfl.const"() <{value = dense<[1, 6]> : tensor<2xi32>}> {names = ["end"]} : () -> tensor<2xi32>
  %s = "tfl.const"() <{value = dense<1> : tensor<2xi32>}> {names = ["strides"]} : () -> tensor<2xi32>
  %y = "tfl.strided_slice"(%xs, %b, %e, %s) {names = ["centre"]} : (tensor<1x8xf32>, tensor<2xi32>, tensor<2xi32>, tensor<2xi32>) -> tensor<1x4xf32>
  %ys = quant.stats %y, <-1.0, 1.0> : tensor<1x4xf32>
  func.return %ys : tensor<1x4xf32>
}

// -----

// A constant table read by GATHER with run-time indices: the rows calibration looked up
// ([-1, 1] at the output) set the range, the table's outlier row (8.0) saturates.
// CHECK-LABEL: func.func @gather_table
// CHECK:      quant.qcast %t : tensor<3x2xf32> -> tensor<3x2x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK:      "tfl.gather"
// CHECK-NEXT: quant.qcast %y : tensor<2x2xf32> -> tensor<2x2x!quant.uniform<i8:f32, 0.007843138:-1>>
func.func @gather_table(%ids: tensor<2xi32> {tfl.name = "ids"}) -> tensor<2x2xf32> {
  %t = "tfl.const"() <{value = dense<[[1.0, -1.0], [0.5, 0.25], [8.0, 0.0]]> : tensor<3x2xf32>}> {names = ["table"]} : () -> tensor<3x2xf32>
  %y = "tfl.gather"(%t, %ids) <{axis = 0 : i32}> {names = ["rows"]} : (tensor<3x2xf32>, tensor<2xi32>) -> tensor<2x2xf32>
  %ys = quant.stats %y, <-1.0, 1.0> : tensor<2x2xf32>
  func.return %ys : tensor<2x2xf32>
}
