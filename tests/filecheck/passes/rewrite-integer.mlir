// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant,propagate-scales,rewrite-integer | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant{activations=int16},propagate-scales,rewrite-integer' | filecheck %s --check-prefix=I16

// rewrite-integer folds dcast -> op -> qcast into ops on quantized types, turns fake-quantized
// constants into integer constants, and puts QUANTIZE at float model inputs and DEQUANTIZE
// at outputs (which take the output names; the integer tensors become <name>_int8).
// CUMSUM has no integer kernel: its dcast/qcast stay for legalize-float-fallback.
// The bias stays float for quantize-bias.

// CHECK-LABEL: func.func @main
// CHECK:      %[[X:.*]] = "tfl.quantize"(%x) {names = ["x_int8"]} : (tensor<1x2x2x2xf32>) -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK:      %[[B:.*]] = "tfl.const"() {{.*}} {names = ["b"]} : () -> tensor<2xf32>
// CHECK-NEXT: %[[W:.*]] = "tfl.const"() <{value = dense<{{\[\[\[\[}}64, -127]]], {{\[\[\[}}127, 64]]]]> : tensor<2x1x1x2xi8>}> {names = ["w"]} : () -> tensor<2x1x1x2x!quant.uniform<i8<-127:127>:f32:0, {0.015748031, 0.003937008}>>
// CHECK-NEXT: %[[C:.*]] = "tfl.conv_2d"(%[[X]], %[[W]], %[[B]]) {{.*}} {names = ["conv_int8"]} : {{.*}} -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.011764706:-128>>
// CHECK-NEXT: %[[OUT2:.*]] = "tfl.dequantize"(%[[C]]) {names = ["conv"]}
// CHECK-NEXT: %[[CS:.*]] = quant.dcast %[[C]]
// CHECK:      %[[S:.*]] = "tfl.cumsum"(%[[CS]], %ax)
// CHECK-NEXT: %[[SQ:.*]] = quant.qcast %[[S]]
// CHECK-NEXT: %[[K:.*]] = "tfl.const"() <{value = dense<127> : tensor<2xi8>}> {names = ["k"]} : () -> tensor<2x!quant.uniform<i8:f32, 0.0019607844:-128>>
// CHECK-NEXT: %[[A:.*]] = "tfl.add"(%[[SQ]], %[[K]]) {names = ["add_int8"]} : {{.*}} -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.025490196:-128>>
// CHECK-NEXT: %[[OUT1:.*]] = "tfl.dequantize"(%[[A]]) {names = ["add"]}
// CHECK-NEXT: func.return %[[OUT1]], %[[OUT2]]
// ADD on int16 uses the general-scale kernel.
// I16: "tfl.add"({{.*}}) <{pot_scale_int16 = false}> {names = ["add_int16"]} : (tensor<1x2x2x2x!quant.uniform<i16:f32, 0.00023804438>>, tensor<2x!quant.uniform<i16:f32, 1.5259255e-05>>) -> tensor<1x2x2x2x!quant.uniform<i16:f32, 0.0002578814>>
func.func @main(%x: tensor<1x2x2x2xf32> {tfl.name = "x"}) -> (tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>) {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x2x2x2xf32>
  %w = "tfl.const"() <{value = dense<[[[[1.0, -2.0]]], [[[0.5, 0.25]]]]> : tensor<2x1x1x2xf32>}> {names = ["w"]} : () -> tensor<2x1x1x2xf32>
  %b = "tfl.const"() <{value = dense<[0.1, -0.2]> : tensor<2xf32>}> {names = ["b"]} : () -> tensor<2xf32>
  %c = "tfl.conv_2d"(%xs, %w, %b) <{padding = "SAME", stride_w = 1 : i32, stride_h = 1 : i32, fused_activation_function = "RELU"}> {names = ["conv"]} : (tensor<1x2x2x2xf32>, tensor<2x1x1x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %cs = quant.stats %c, <0.0, 3.0> : tensor<1x2x2x2xf32>
  %ax = "tfl.const"() <{value = dense<3> : tensor<i32>}> {names = ["axis"]} : () -> tensor<i32>
  %s = "tfl.cumsum"(%cs, %ax) {names = ["cumsum"]} : (tensor<1x2x2x2xf32>, tensor<i32>) -> tensor<1x2x2x2xf32>
  %ss = quant.stats %s, <0.0, 6.0> : tensor<1x2x2x2xf32>
  %k = "tfl.const"() <{value = dense<0.5> : tensor<2xf32>}> {names = ["k"]} : () -> tensor<2xf32>
  %a = "tfl.add"(%ss, %k) {names = ["add"]} : (tensor<1x2x2x2xf32>, tensor<2xf32>) -> tensor<1x2x2x2xf32>
  %as = quant.stats %a, <0.5, 6.5> : tensor<1x2x2x2xf32>
  func.return %as, %cs : tensor<1x2x2x2xf32>, tensor<1x2x2x2xf32>
}

// -----

// A requantize left by propagate-scales (TANH's fixed output into a concatenation with
// another range) becomes an int8 -> int8 QUANTIZE; a gather table becomes an int8 constant
// (asymmetric, from its own range) that GATHER reads directly.
// CHECK-LABEL: func.func @requantize
// CHECK:      %[[T:.*]] = "tfl.tanh"({{.*}}) -> tensor<1x2x!quant.uniform<i8:f32, 0.0078125>>
// CHECK-NEXT: %[[R:.*]] = "tfl.quantize"(%[[T]]) {names = ["tanh_requantized"]} : (tensor<1x2x!quant.uniform<i8:f32, 0.0078125>>) -> tensor<1x2x!quant.uniform<i8:f32, 0.03137255:-1>>
// CHECK-NEXT: "tfl.concatenation"(%[[R]], %{{.*}})
// CHECK:      %[[TB:.*]] = "tfl.const"() <{value = dense<{{\[\[}}63, -33], [126, -1], [-128, 95]]> : tensor<3x2xi8>}> {names = ["table"]} : () -> tensor<3x2x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK-NEXT: "tfl.gather"(%[[TB]], %ids)
func.func @requantize(%a: tensor<1x2xf32> {tfl.name = "a"}, %ids: tensor<3xi32> {tfl.name = "ids"}) -> (tensor<1x4xf32>, tensor<3x2xf32>) {
  %as = quant.stats %a, <-4.0, 4.0> : tensor<1x2xf32>
  %t = "tfl.tanh"(%as) {names = ["tanh"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %ts = quant.stats %t, <-1.0, 1.0> : tensor<1x2xf32>
  %c = "tfl.concatenation"(%ts, %as) <{axis = 1 : i32}> {names = ["cat"]} : (tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x4xf32>
  %cs = quant.stats %c, <-4.0, 4.0> : tensor<1x4xf32>
  %table = "tfl.const"() <{value = dense<[[0.5, -0.25], [1.0, 0.0], [-1.0, 0.75]]> : tensor<3x2xf32>}> {names = ["table"]} : () -> tensor<3x2xf32>
  %g = "tfl.gather"(%table, %ids) <{axis = 0 : i32}> {names = ["rows"]} : (tensor<3x2xf32>, tensor<3xi32>) -> tensor<3x2xf32>
  %gs = quant.stats %g, <-1.0, 1.0> : tensor<3x2xf32>
  func.return %cs, %gs : tensor<1x4xf32>, tensor<3x2xf32>
}
