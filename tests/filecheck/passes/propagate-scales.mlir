// RUN: tflquant-opt %s --split-input-file -p insert-fake-quant,propagate-scales | filecheck %s
// RUN: tflquant-opt %s --split-input-file -p 'insert-fake-quant{activations=int16},propagate-scales' | filecheck %s --check-prefix=I16

// propagate-scales makes the fake-quant parameters satisfy the kernels: same-scale ops
// share one parameter set with their inputs, fixed-range ops get their fixed output.

// MAX_POOL and RESHAPE take their input's parameters (the pool's own range [0, 0.5] is
// dropped); SOFTMAX gets (1/256, -128), in 16x8 (1/32768, 0).
// CHECK-LABEL: func.func @chain
// CHECK:      quant.qcast %x : {{.*}} -> tensor<1x4x4x2x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK:      quant.qcast %p : {{.*}} -> tensor<1x2x2x2x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK:      quant.qcast %r : {{.*}} -> tensor<1x8x!quant.uniform<i8:f32, 0.007843138:-1>>
// CHECK:      quant.qcast %fc : {{.*}} -> tensor<1x32x!quant.uniform<i8:f32, 0.03137255:-1>>
// CHECK:      quant.qcast %sm : {{.*}} -> tensor<1x32x!quant.uniform<i8:f32, 0.00390625:-128>>
// I16-LABEL: func.func @chain
// I16:       quant.qcast %p : {{.*}} -> tensor<1x2x2x2x!quant.uniform<i16:f32, 3.967406e-05>>
// I16:       quant.qcast %r : {{.*}} -> tensor<1x8x!quant.uniform<i16:f32, 3.967406e-05>>
// I16:       quant.qcast %sm : {{.*}} -> tensor<1x32x!quant.uniform<i16:f32, 3.0517578e-05>>
func.func @chain(%x: tensor<1x4x4x2xf32> {tfl.name = "x"}) -> tensor<1x32xf32> {
  %xs = quant.stats %x, <-1.0, 1.0> : tensor<1x4x4x2xf32>
  %p = "tfl.max_pool_2d"(%xs) <{padding = "VALID", stride_w = 2 : i32, stride_h = 2 : i32, filter_width = 2 : i32, filter_height = 2 : i32}> {names = ["pool"]} : (tensor<1x4x4x2xf32>) -> tensor<1x2x2x2xf32>
  %ps = quant.stats %p, <0.0, 0.5> : tensor<1x2x2x2xf32>
  %shape = "tfl.const"() <{value = dense<[1, 8]> : tensor<2xi32>}> {names = ["shape"]} : () -> tensor<2xi32>
  %r = "tfl.reshape"(%ps, %shape) {names = ["flat"]} : (tensor<1x2x2x2xf32>, tensor<2xi32>) -> tensor<1x8xf32>
  %rs = quant.stats %r, <0.0, 0.5> : tensor<1x8xf32>
  %w = "tfl.const"() <{value = dense<0.5> : tensor<32x8xf32>}> {names = ["w"]} : () -> tensor<32x8xf32>
  %nb = "tfl.no_value"() : () -> none
  %fc = "tfl.fully_connected"(%rs, %w, %nb) {names = ["fc"]} : (tensor<1x8xf32>, tensor<32x8xf32>, none) -> tensor<1x32xf32>
  %fcs = quant.stats %fc, <-4.0, 4.0> : tensor<1x32xf32>
  %sm = "tfl.softmax"(%fcs) <{beta = 1.0 : f32}> {names = ["probs"]} : (tensor<1x32xf32>) -> tensor<1x32xf32>
  %sms = quant.stats %sm, <0.0, 0.3> : tensor<1x32xf32>
  func.return %sms : tensor<1x32xf32>
}


// -----

// CONCATENATION: every input gets the output's parameters (the union of their ranges,
// [-1, 4]) at its producer, even the RELU output that LOGISTIC reads too; TANH's fixed
// output (1/128, 0) cannot change, so it is requantized (a second qcast) instead.
// LOGISTIC gets (1/256, -128).
// CHECK-LABEL: func.func @concat
// CHECK:      quant.qcast %b : {{.*}} -> tensor<1x2x!quant.uniform<i8:f32, 0.019607844:-77>>
// CHECK:      quant.qcast %r : {{.*}} -> tensor<1x2x!quant.uniform<i8:f32, 0.019607844:-77>>
// CHECK:      quant.qcast %t : {{.*}} -> tensor<1x2x!quant.uniform<i8:f32, 0.0078125>>
// CHECK:      %[[RQ:.*]] = quant.qcast %ts : {{.*}} -> tensor<1x2x!quant.uniform<i8:f32, 0.019607844:-77>>
// CHECK-NEXT: %[[RD:.*]] = quant.dcast %[[RQ]]
// CHECK-NEXT: "tfl.concatenation"(%rs, %bs, %[[RD]])
// CHECK-NEXT: quant.qcast %c : {{.*}} -> tensor<1x6x!quant.uniform<i8:f32, 0.019607844:-77>>
// CHECK:      quant.qcast %l : {{.*}} -> tensor<1x2x!quant.uniform<i8:f32, 0.00390625:-128>>
// I16-LABEL: func.func @concat
// I16:       quant.qcast %t : {{.*}} -> tensor<1x2x!quant.uniform<i16:f32, 3.0517578e-05>>
// I16:       quant.qcast %ts : {{.*}} -> tensor<1x2x!quant.uniform<i16:f32, 0.00015869625>>
// I16:       quant.qcast %c : {{.*}} -> tensor<1x6x!quant.uniform<i16:f32, 0.00015869625>>

func.func @concat(%a: tensor<1x2xf32> {tfl.name = "a"}, %b: tensor<1x2xf32> {tfl.name = "b"}) -> (tensor<1x6xf32>, tensor<1x2xf32>) {
  %as = quant.stats %a, <-1.0, 1.0> : tensor<1x2xf32>
  %bs = quant.stats %b, <0.0, 4.0> : tensor<1x2xf32>
  %r = "tfl.relu"(%as) {names = ["relu"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %rs = quant.stats %r, <0.0, 1.0> : tensor<1x2xf32>
  %t = "tfl.tanh"(%bs) {names = ["tanh"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %ts = quant.stats %t, <-1.0, 1.0> : tensor<1x2xf32>
  %c = "tfl.concatenation"(%rs, %bs, %ts) <{axis = 1 : i32}> {names = ["cat"]} : (tensor<1x2xf32>, tensor<1x2xf32>, tensor<1x2xf32>) -> tensor<1x6xf32>
  %cs = quant.stats %c, <-1.0, 4.0> : tensor<1x6xf32>
  %l = "tfl.logistic"(%rs) {names = ["sigmoid"]} : (tensor<1x2xf32>) -> tensor<1x2xf32>
  %ls = quant.stats %l, <0.5, 0.75> : tensor<1x2xf32>
  func.return %cs, %ls : tensor<1x6xf32>, tensor<1x2xf32>
}

// -----

// SUB of a value from itself: calibrated range [0, 0] would give a scale so small that the
// kernel's output multiplier 2*max(s_in)/(2^20*s_out) exceeds 1 (TFLite Micro aborts): the
// output scale is raised to 1.01 * 2 * s_in / 2^20.
// CHECK-LABEL: func.func @cancel
// CHECK: quant.qcast %d : {{.*}} -> tensor<1x4x!quant.uniform<i8:f32, 1.5109194e-08:-95>>
func.func @cancel(%x: tensor<1x4xf32> {tfl.name = "x"}) -> tensor<1x4xf32> {
  %xs = quant.stats %x, <-2.0, 2.0> : tensor<1x4xf32>
  %r = "tfl.relu"(%xs) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
  %rs = quant.stats %r, <0.0, 2.0> : tensor<1x4xf32>
  %d = "tfl.sub"(%rs, %rs) {names = ["diff"]} : (tensor<1x4xf32>, tensor<1x4xf32>) -> tensor<1x4xf32>
  %ds = quant.stats %d, <0.0, 0.0> : tensor<1x4xf32>
  func.return %ds : tensor<1x4xf32>
}
