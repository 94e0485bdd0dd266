// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant,propagate-scales,rewrite-integer | filecheck %s --check-prefix=INT

// PADV2's output takes its input's parameters, and a constant padding value outside that
// range saturates to it: TF pads a max pool with -inf (here -FLT_MAX, which xDSL's text
// form can spell; -inf is tested from Python), whose calibrated range would otherwise make
// the scale ~1e36 and every other value 0. [-1, 3]: scale 4/255, zero point -64; the
// value becomes the lowest real value, -1.0 (int8 -128).
// CHECK-LABEL: func.func @padv2_lowest
// CHECK:      %[[XQ:.*]] = quant.qcast %x : tensor<1x4x4x1xf32> -> tensor<1x4x4x1x!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK:      %[[V:.*]] = "tfl.const"() <{value = dense<-1.00392163> : tensor<f32>}> {names = ["pad_value/saturated"]}
// CHECK-NEXT: %[[VQ:.*]] = quant.qcast %[[V]] : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK-NEXT: %[[VD:.*]] = quant.dcast %[[VQ]]
// CHECK-NEXT: %y = "tfl.padv2"(%xs, %p, %[[VD]])
// CHECK-NEXT: quant.qcast %y : tensor<1x6x6x1xf32> -> tensor<1x6x6x1x!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK-NOT:  names = ["pad_value"]
// INT-LABEL: func.func @padv2_lowest
// INT:       "tfl.const"() <{value = dense<-128> : tensor<i8>}> {names = ["pad_value/saturated"]} : () -> tensor<!quant.uniform<i8:f32, 0.015686275:-64>>
// INT:       "tfl.padv2"({{.*}}) -> tensor<1x6x6x1x!quant.uniform<i8:f32, 0.015686275:-64>>
func.func @padv2_lowest(%x: tensor<1x4x4x1xf32> {tfl.name = "x"}) -> tensor<1x6x6x1xf32> {
  %xs = quant.stats %x, <-1.0, 3.0> : tensor<1x4x4x1xf32>
  %p = "tfl.const"() <{value = dense<[[0, 0], [1, 1], [1, 1], [0, 0]]> : tensor<4x2xi32>}> {names = ["paddings"]} : () -> tensor<4x2xi32>
  %v = "tfl.const"() <{value = dense<-3.40282347e+38> : tensor<f32>}> {names = ["pad_value"]} : () -> tensor<f32>
  %y = "tfl.padv2"(%xs, %p, %v) {names = ["padded"]} : (tensor<1x4x4x1xf32>, tensor<4x2xi32>, tensor<f32>) -> tensor<1x6x6x1xf32>
  %ys = quant.stats %y, <-3.4e+38, 3.0> : tensor<1x6x6x1xf32>
  func.return %ys : tensor<1x6x6x1xf32>
}

// -----

// A padding value inside the range is kept as it is (0.5), with the input's parameters.
// CHECK-LABEL: func.func @padv2_inside
// CHECK:      %[[VQ:.*]] = quant.qcast %v : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK:      "tfl.padv2"
// CHECK-NEXT: quant.qcast %y : tensor<1x6x6x1xf32> -> tensor<1x6x6x1x!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK-NOT:  saturated
func.func @padv2_inside(%x: tensor<1x4x4x1xf32> {tfl.name = "x"}) -> tensor<1x6x6x1xf32> {
  %xs = quant.stats %x, <-1.0, 3.0> : tensor<1x4x4x1xf32>
  %p = "tfl.const"() <{value = dense<[[0, 0], [1, 1], [1, 1], [0, 0]]> : tensor<4x2xi32>}> {names = ["paddings"]} : () -> tensor<4x2xi32>
  %v = "tfl.const"() <{value = dense<5.000000e-01> : tensor<f32>}> {names = ["pad_value"]} : () -> tensor<f32>
  %y = "tfl.padv2"(%xs, %p, %v) {names = ["padded"]} : (tensor<1x4x4x1xf32>, tensor<4x2xi32>, tensor<f32>) -> tensor<1x6x6x1xf32>
  %ys = quant.stats %y, <-1.0, 3.0> : tensor<1x6x6x1xf32>
  func.return %ys : tensor<1x6x6x1xf32>
}

// -----

// MAXIMUM with a constant far below the data (a "no floor" written as -FLT_MAX) reads the
// constant raised to the data's minimum, with the data's parameters: the same results.
// CHECK-LABEL: func.func @maximum_lowest
// CHECK:      %[[V:.*]] = "tfl.const"() <{value = dense<-1.00392163> : tensor<f32>}> {names = ["floor/saturated"]}
// CHECK-NEXT: quant.qcast %[[V]] : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.015686275:-64>>
// CHECK:      "tfl.maximum"
func.func @maximum_lowest(%x: tensor<4xf32> {tfl.name = "x"}) -> tensor<4xf32> {
  %xs = quant.stats %x, <-1.0, 3.0> : tensor<4xf32>
  %v = "tfl.const"() <{value = dense<-3.40282347e+38> : tensor<f32>}> {names = ["floor"]} : () -> tensor<f32>
  %y = "tfl.maximum"(%xs, %v) {names = ["y"]} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %ys = quant.stats %y, <-1.0, 3.0> : tensor<4xf32>
  func.return %ys : tensor<4xf32>
}

// -----

// A MAXIMUM constant above the data's range is a real floor: kept, with its own range.
// CHECK-LABEL: func.func @maximum_floor_above
// CHECK:      quant.qcast %v : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.019607844:-128>>
// CHECK-NOT:  saturated
func.func @maximum_floor_above(%x: tensor<4xf32> {tfl.name = "x"}) -> tensor<4xf32> {
  %xs = quant.stats %x, <-1.0, 3.0> : tensor<4xf32>
  %v = "tfl.const"() <{value = dense<5.0> : tensor<f32>}> {names = ["floor"]} : () -> tensor<f32>
  %y = "tfl.maximum"(%xs, %v) {names = ["y"]} : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %ys = quant.stats %y, <5.0, 5.0> : tensor<4xf32>
  func.return %ys : tensor<4xf32>
}

// -----

// An attention mask: SELECT_V2 between scores in [-6, 6] and -FLT_MAX. Kept, the constant
// would leave the scores fewer than 4 of 256 levels (the calibrated output range holds it
// too); it saturates to the scores' lowest value and the output takes their parameters.
// CHECK-LABEL: func.func @select_mask
// CHECK:      %[[V:.*]] = "tfl.const"() <{value = dense<-5.97647047> : tensor<f32>}> {names = ["mask_value/saturated"]}
// CHECK-NEXT: quant.qcast %[[V]] : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.047058824:-1>>
// CHECK:      %y = "tfl.select_v2"
// CHECK-NEXT: quant.qcast %y : tensor<4xf32> -> tensor<4x!quant.uniform<i8:f32, 0.047058824:-1>>
func.func @select_mask(%x: tensor<4xf32> {tfl.name = "x"}, %c: tensor<4xi1> {tfl.name = "c"}) -> tensor<4xf32> {
  %xs = quant.stats %x, <-6.0, 6.0> : tensor<4xf32>
  %v = "tfl.const"() <{value = dense<-3.40282347e+38> : tensor<f32>}> {names = ["mask_value"]} : () -> tensor<f32>
  %y = "tfl.select_v2"(%c, %xs, %v) {names = ["y"]} : (tensor<4xi1>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %ys = quant.stats %y, <-3.4e+38, 6.0> : tensor<4xf32>
  func.return %ys : tensor<4xf32>
}

// -----

// A SELECT_V2 value a little beyond the data (10 against [-6, 6]) is a value, not a mask:
// it keeps its own range (the union follows in propagate-scales).
// CHECK-LABEL: func.func @select_value
// CHECK:      quant.qcast %v : tensor<f32> -> tensor<!quant.uniform<i8:f32, 0.039215688:-128>>
// CHECK-NOT:  saturated
func.func @select_value(%x: tensor<4xf32> {tfl.name = "x"}, %c: tensor<4xi1> {tfl.name = "c"}) -> tensor<4xf32> {
  %xs = quant.stats %x, <-6.0, 6.0> : tensor<4xf32>
  %v = "tfl.const"() <{value = dense<10.0> : tensor<f32>}> {names = ["value"]} : () -> tensor<f32>
  %y = "tfl.select_v2"(%c, %xs, %v) {names = ["y"]} : (tensor<4xi1>, tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  %ys = quant.stats %y, <-6.0, 10.0> : tensor<4xf32>
  func.return %ys : tensor<4xf32>
}

// -----

// An additive mask (0 kept, -1e9 masked) on scores in [-6, 6]: the far value is clipped to
// -64 x (width + magnitude) of the quantized range, ~-1153 (the constant's scale stays within the ADD kernel's 20-bit
// rescaling of the scores'), and the sum takes the range the kept values give, [-6, 6].
// CHECK-LABEL: func.func @additive_mask
// CHECK:      %[[V:.*]] = "tfl.const"() <{value = dense<[0.000000e+00, -1153.50586]> : tensor<2xf32>}> {names = ["adder/saturated"]}
// CHECK:      quant.qcast %[[V]] : tensor<2xf32> -> tensor<2x!quant.uniform<i8:f32, 4.5235524:127>>
// CHECK:      %y = "tfl.add"
// CHECK-NEXT: quant.qcast %y : tensor<2xf32> -> tensor<2x!quant.uniform<i8:f32, 0.047058824:-1>>
func.func @additive_mask(%x: tensor<2xf32> {tfl.name = "x"}) -> tensor<2xf32> {
  %xs = quant.stats %x, <-6.0, 6.0> : tensor<2xf32>
  %v = "tfl.const"() <{value = dense<[0.0, -1.0e+09]> : tensor<2xf32>}> {names = ["adder"]} : () -> tensor<2xf32>
  %y = "tfl.add"(%xs, %v) {names = ["y"]} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>
  %ys = quant.stats %y, <-1.0e+09, 6.0> : tensor<2xf32>
  func.return %ys : tensor<2xf32>
}
