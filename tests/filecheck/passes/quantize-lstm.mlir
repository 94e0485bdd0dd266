// RUN: tflquant-opt %s -p quantize-lstm | filecheck %s
// RUN: tflquant-opt %s -p quantize-lstm,quantize-lstm | filecheck %s

// A Keras-style LSTM between int8 values: int8 per-tensor weights, int32 biases at
// input_scale x input_to_<gate>_weight_scale (0.16 / (0.02 x 0.5/127) = 2032), the output state
// with the output's parameters, the cell state int16 at 2^-15 (|cell| <= 0.77 < 2^0), five
// intermediates, and the output's qcast folded into the op.
// CHECK-LABEL: func.func @keras_lstm
// CHECK:         %[[X:.*]] = quant.qcast %x : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>>
// CHECK:         "tfl.const"() <{value = dense<{{\[\[}}-127, -64], [64, 32]]> : tensor<2x2xi8>}> {names = ["w_in_0"]} : () -> tensor<2x2x!quant.uniform<i8<-127:127>:f32, 0.003937008>>
// CHECK:         "tfl.const"() <{value = dense<[2032, 5461]> : tensor<2xi32>}> {names = ["bias_0"]} : () -> tensor<2x!quant.uniform<i32:f32, 7.874016e-05>>
// CHECK:         "tfl.const"() <{value = dense<[-1841, 825]> : tensor<2xi32>}> {names = ["bias_1"]} : () -> tensor<2x!quant.uniform<i32:f32, 0.00015748032>>
// CHECK:         %[[H:.*]] = "tfl.variable"() {names = ["output_state"]} : () -> tensor<1x2x!quant.uniform<i8:f32, 0.0025:44>>
// CHECK-NEXT:    %[[C:.*]] = "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2x!quant.uniform<i16:f32, 3.0517578e-05>>
// CHECK-NEXT:    %[[L:.*]] = "tfl.unidirectional_sequence_lstm"(%[[X]], {{.*}}, %[[H]], %[[C]], {{.*}}) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"], tfl.intermediates = [{name = "lstm_out/input_gate", type = tensor<0x!quant.uniform<i16:f32, 0.00024414062>>}, {name = "lstm_out/forget_gate", type = tensor<0x!quant.uniform<i16:f32, 0.00024414062>>}, {name = "lstm_out/cell_gate", type = tensor<0x!quant.uniform<i16:f32, 0.00024414062>>}, {name = "lstm_out/output_gate", type = tensor<0x!quant.uniform<i16:f32, 0.00024414062>>}, {name = "lstm_out/hidden", type = tensor<0x!quant.uniform<i8:f32, 0.0025:44>>}]}
// CHECK-SAME:    -> tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>>
// CHECK-NEXT:    %[[D:.*]] = quant.dcast %[[L]]
// CHECK-NEXT:    func.return %[[D]]
func.func @keras_lstm(%x: tensor<1x2x2xf32>) -> tensor<1x2x2xf32> {
  %1 = quant.qcast %x : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>>
  %2 = quant.dcast %1 : tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>> -> tensor<1x2x2xf32>
  %3 = tfl.no_value
  %4 = "tfl.const"() <{value = dense<[[-0.5, -0.25], [0.25, 0.125]]> : tensor<2x2xf32>}> {names = ["w_in_0"]} : () -> tensor<2x2xf32>
  %5 = "tfl.const"() <{value = dense<[[-0.25, 1.0], [0.5, -0.5]]> : tensor<2x2xf32>}> {names = ["w_in_1"]} : () -> tensor<2x2xf32>
  %6 = "tfl.const"() <{value = dense<[[0.25, -0.375], [-0.125, 0.0]]> : tensor<2x2xf32>}> {names = ["w_in_2"]} : () -> tensor<2x2xf32>
  %7 = "tfl.const"() <{value = dense<[[-0.0625, 0.125], [0.25, 0.5]]> : tensor<2x2xf32>}> {names = ["w_in_3"]} : () -> tensor<2x2xf32>
  %8 = "tfl.const"() <{value = dense<[[-0.25, 0.125], [0.25, -0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_0"]} : () -> tensor<2x2xf32>
  %9 = "tfl.const"() <{value = dense<[[-0.5, 0.5], [-0.25, -0.125]]> : tensor<2x2xf32>}> {names = ["w_rec_1"]} : () -> tensor<2x2xf32>
  %10 = "tfl.const"() <{value = dense<[[0.375, 0.125], [-0.0625, 0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_2"]} : () -> tensor<2x2xf32>
  %11 = "tfl.const"() <{value = dense<[[-0.5, 0.25], [-0.125, -0.375]]> : tensor<2x2xf32>}> {names = ["w_rec_3"]} : () -> tensor<2x2xf32>
  %12 = "tfl.const"() <{value = dense<[0.16, 0.43]> : tensor<2xf32>}> {names = ["bias_0"]} : () -> tensor<2xf32>
  %13 = "tfl.const"() <{value = dense<[-0.29, 0.13]> : tensor<2xf32>}> {names = ["bias_1"]} : () -> tensor<2xf32>
  %14 = "tfl.const"() <{value = dense<[-0.2, 0.24]> : tensor<2xf32>}> {names = ["bias_2"]} : () -> tensor<2xf32>
  %15 = "tfl.const"() <{value = dense<[0.22, -0.28]> : tensor<2xf32>}> {names = ["bias_3"]} : () -> tensor<2xf32>
  %16 = "tfl.variable"() {names = ["output_state"]} : () -> tensor<1x2xf32>
  %17 = "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2xf32>
  %18 = "tfl.unidirectional_sequence_lstm"(%2, %4, %5, %6, %7, %8, %9, %10, %11, %3, %3, %3, %12, %13, %14, %15, %3, %3, %16, %17, %3, %3, %3, %3) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"], cell_stats = #quant.stats<-0.77, 0.42>} : (tensor<1x2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x2x2xf32>
  %19 = quant.qcast %18 : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>>
  %20 = quant.dcast %19 : tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>> -> tensor<1x2x2xf32>
  func.return %20 : tensor<1x2x2xf32>
}


// A cell state beyond 2^6 saturates: LiteRT's integer tanh takes at most 6 integer bits.
// CHECK-LABEL: func.func @large_cell
// CHECK:         "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2x!quant.uniform<i16:f32, 0.001953125>>
func.func @large_cell(%x: tensor<1x2x2xf32>) -> tensor<1x2x2xf32> {
  %1 = quant.qcast %x : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>>
  %2 = quant.dcast %1 : tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>> -> tensor<1x2x2xf32>
  %3 = tfl.no_value
  %4 = "tfl.const"() <{value = dense<[[-0.5, -0.25], [0.25, 0.125]]> : tensor<2x2xf32>}> {names = ["w_in_0"]} : () -> tensor<2x2xf32>
  %5 = "tfl.const"() <{value = dense<[[-0.25, 1.0], [0.5, -0.5]]> : tensor<2x2xf32>}> {names = ["w_in_1"]} : () -> tensor<2x2xf32>
  %6 = "tfl.const"() <{value = dense<[[0.25, -0.375], [-0.125, 0.0]]> : tensor<2x2xf32>}> {names = ["w_in_2"]} : () -> tensor<2x2xf32>
  %7 = "tfl.const"() <{value = dense<[[-0.0625, 0.125], [0.25, 0.5]]> : tensor<2x2xf32>}> {names = ["w_in_3"]} : () -> tensor<2x2xf32>
  %8 = "tfl.const"() <{value = dense<[[-0.25, 0.125], [0.25, -0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_0"]} : () -> tensor<2x2xf32>
  %9 = "tfl.const"() <{value = dense<[[-0.5, 0.5], [-0.25, -0.125]]> : tensor<2x2xf32>}> {names = ["w_rec_1"]} : () -> tensor<2x2xf32>
  %10 = "tfl.const"() <{value = dense<[[0.375, 0.125], [-0.0625, 0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_2"]} : () -> tensor<2x2xf32>
  %11 = "tfl.const"() <{value = dense<[[-0.5, 0.25], [-0.125, -0.375]]> : tensor<2x2xf32>}> {names = ["w_rec_3"]} : () -> tensor<2x2xf32>
  %12 = "tfl.const"() <{value = dense<[0.16, 0.43]> : tensor<2xf32>}> {names = ["bias_0"]} : () -> tensor<2xf32>
  %13 = "tfl.const"() <{value = dense<[-0.29, 0.13]> : tensor<2xf32>}> {names = ["bias_1"]} : () -> tensor<2xf32>
  %14 = "tfl.const"() <{value = dense<[-0.2, 0.24]> : tensor<2xf32>}> {names = ["bias_2"]} : () -> tensor<2xf32>
  %15 = "tfl.const"() <{value = dense<[0.22, -0.28]> : tensor<2xf32>}> {names = ["bias_3"]} : () -> tensor<2xf32>
  %16 = "tfl.variable"() {names = ["output_state"]} : () -> tensor<1x2xf32>
  %17 = "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2xf32>
  %18 = "tfl.unidirectional_sequence_lstm"(%2, %4, %5, %6, %7, %8, %9, %10, %11, %3, %3, %3, %12, %13, %14, %15, %3, %3, %16, %17, %3, %3, %3, %3) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"], cell_stats = #quant.stats<-100.0, 3.0>} : (tensor<1x2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x2x2xf32>
  %19 = quant.qcast %18 : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>>
  %20 = quant.dcast %19 : tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>> -> tensor<1x2x2xf32>
  func.return %20 : tensor<1x2x2xf32>
}


// Without a calibrated cell state the LSTM stays float and says why.
// CHECK-LABEL: func.func @no_cell_stats
// CHECK:         "tfl.unidirectional_sequence_lstm"({{.*}}) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"], tflquant.fallback_reason = "its cell state has no calibrated range"} : ({{.*}}) -> tensor<1x2x2xf32>
// CHECK-NEXT:    quant.qcast
func.func @no_cell_stats(%x: tensor<1x2x2xf32>) -> tensor<1x2x2xf32> {
  %1 = quant.qcast %x : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>>
  %2 = quant.dcast %1 : tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>> -> tensor<1x2x2xf32>
  %3 = tfl.no_value
  %4 = "tfl.const"() <{value = dense<[[-0.5, -0.25], [0.25, 0.125]]> : tensor<2x2xf32>}> {names = ["w_in_0"]} : () -> tensor<2x2xf32>
  %5 = "tfl.const"() <{value = dense<[[-0.25, 1.0], [0.5, -0.5]]> : tensor<2x2xf32>}> {names = ["w_in_1"]} : () -> tensor<2x2xf32>
  %6 = "tfl.const"() <{value = dense<[[0.25, -0.375], [-0.125, 0.0]]> : tensor<2x2xf32>}> {names = ["w_in_2"]} : () -> tensor<2x2xf32>
  %7 = "tfl.const"() <{value = dense<[[-0.0625, 0.125], [0.25, 0.5]]> : tensor<2x2xf32>}> {names = ["w_in_3"]} : () -> tensor<2x2xf32>
  %8 = "tfl.const"() <{value = dense<[[-0.25, 0.125], [0.25, -0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_0"]} : () -> tensor<2x2xf32>
  %9 = "tfl.const"() <{value = dense<[[-0.5, 0.5], [-0.25, -0.125]]> : tensor<2x2xf32>}> {names = ["w_rec_1"]} : () -> tensor<2x2xf32>
  %10 = "tfl.const"() <{value = dense<[[0.375, 0.125], [-0.0625, 0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_2"]} : () -> tensor<2x2xf32>
  %11 = "tfl.const"() <{value = dense<[[-0.5, 0.25], [-0.125, -0.375]]> : tensor<2x2xf32>}> {names = ["w_rec_3"]} : () -> tensor<2x2xf32>
  %12 = "tfl.const"() <{value = dense<[0.16, 0.43]> : tensor<2xf32>}> {names = ["bias_0"]} : () -> tensor<2xf32>
  %13 = "tfl.const"() <{value = dense<[-0.29, 0.13]> : tensor<2xf32>}> {names = ["bias_1"]} : () -> tensor<2xf32>
  %14 = "tfl.const"() <{value = dense<[-0.2, 0.24]> : tensor<2xf32>}> {names = ["bias_2"]} : () -> tensor<2xf32>
  %15 = "tfl.const"() <{value = dense<[0.22, -0.28]> : tensor<2xf32>}> {names = ["bias_3"]} : () -> tensor<2xf32>
  %16 = "tfl.variable"() {names = ["output_state"]} : () -> tensor<1x2xf32>
  %17 = "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2xf32>
  %18 = "tfl.unidirectional_sequence_lstm"(%2, %4, %5, %6, %7, %8, %9, %10, %11, %3, %3, %3, %12, %13, %14, %15, %3, %3, %16, %17, %3, %3, %3, %3) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"]} : (tensor<1x2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x2x2xf32>
  %19 = quant.qcast %18 : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>>
  %20 = quant.dcast %19 : tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>> -> tensor<1x2x2xf32>
  func.return %20 : tensor<1x2x2xf32>
}


// CHECK-LABEL: func.func @peephole
// CHECK:         tflquant.fallback_reason = "peephole LSTM: tflquant quantizes LSTMs without layer norm, projection or peephole"
// CHECK-SAME:    -> tensor<1x2x2xf32>
func.func @peephole(%x: tensor<1x2x2xf32>) -> tensor<1x2x2xf32> {
  %1 = quant.qcast %x : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>>
  %2 = quant.dcast %1 : tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>> -> tensor<1x2x2xf32>
  %3 = tfl.no_value
  %4 = "tfl.const"() <{value = dense<[[-0.5, -0.25], [0.25, 0.125]]> : tensor<2x2xf32>}> {names = ["w_in_0"]} : () -> tensor<2x2xf32>
  %5 = "tfl.const"() <{value = dense<[[-0.25, 1.0], [0.5, -0.5]]> : tensor<2x2xf32>}> {names = ["w_in_1"]} : () -> tensor<2x2xf32>
  %6 = "tfl.const"() <{value = dense<[[0.25, -0.375], [-0.125, 0.0]]> : tensor<2x2xf32>}> {names = ["w_in_2"]} : () -> tensor<2x2xf32>
  %7 = "tfl.const"() <{value = dense<[[-0.0625, 0.125], [0.25, 0.5]]> : tensor<2x2xf32>}> {names = ["w_in_3"]} : () -> tensor<2x2xf32>
  %8 = "tfl.const"() <{value = dense<[[-0.25, 0.125], [0.25, -0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_0"]} : () -> tensor<2x2xf32>
  %9 = "tfl.const"() <{value = dense<[[-0.5, 0.5], [-0.25, -0.125]]> : tensor<2x2xf32>}> {names = ["w_rec_1"]} : () -> tensor<2x2xf32>
  %10 = "tfl.const"() <{value = dense<[[0.375, 0.125], [-0.0625, 0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_2"]} : () -> tensor<2x2xf32>
  %11 = "tfl.const"() <{value = dense<[[-0.5, 0.25], [-0.125, -0.375]]> : tensor<2x2xf32>}> {names = ["w_rec_3"]} : () -> tensor<2x2xf32>
  %12 = "tfl.const"() <{value = dense<[0.16, 0.43]> : tensor<2xf32>}> {names = ["bias_0"]} : () -> tensor<2xf32>
  %13 = "tfl.const"() <{value = dense<[-0.29, 0.13]> : tensor<2xf32>}> {names = ["bias_1"]} : () -> tensor<2xf32>
  %14 = "tfl.const"() <{value = dense<[-0.2, 0.24]> : tensor<2xf32>}> {names = ["bias_2"]} : () -> tensor<2xf32>
  %15 = "tfl.const"() <{value = dense<[0.22, -0.28]> : tensor<2xf32>}> {names = ["bias_3"]} : () -> tensor<2xf32>
  %16 = "tfl.variable"() {names = ["output_state"]} : () -> tensor<1x2xf32>
  %17 = "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2xf32>
  %p = "tfl.const"() <{value = dense<[0.5, 0.25]> : tensor<2xf32>}> {names = ["peep"]} : () -> tensor<2xf32>
  %18 = "tfl.unidirectional_sequence_lstm"(%2, %4, %5, %6, %7, %8, %9, %10, %11, %p, %p, %p, %12, %13, %14, %15, %3, %3, %16, %17, %3, %3, %3, %3) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"], cell_stats = #quant.stats<-0.77, 0.42>} : (tensor<1x2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x2x2xf32>
  %19 = quant.qcast %18 : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>>
  %20 = quant.dcast %19 : tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>> -> tensor<1x2x2xf32>
  func.return %20 : tensor<1x2x2xf32>
}


// CHECK-LABEL: func.func @relu_lstm
// CHECK:         tflquant.fallback_reason = "LiteRT's integer LSTM computes tanh, this one RELU"
// CHECK-SAME:    -> tensor<1x2x2xf32>
func.func @relu_lstm(%x: tensor<1x2x2xf32>) -> tensor<1x2x2xf32> {
  %1 = quant.qcast %x : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>>
  %2 = quant.dcast %1 : tensor<1x2x2x!quant.uniform<i8:f32, 0.02:-2>> -> tensor<1x2x2xf32>
  %3 = tfl.no_value
  %4 = "tfl.const"() <{value = dense<[[-0.5, -0.25], [0.25, 0.125]]> : tensor<2x2xf32>}> {names = ["w_in_0"]} : () -> tensor<2x2xf32>
  %5 = "tfl.const"() <{value = dense<[[-0.25, 1.0], [0.5, -0.5]]> : tensor<2x2xf32>}> {names = ["w_in_1"]} : () -> tensor<2x2xf32>
  %6 = "tfl.const"() <{value = dense<[[0.25, -0.375], [-0.125, 0.0]]> : tensor<2x2xf32>}> {names = ["w_in_2"]} : () -> tensor<2x2xf32>
  %7 = "tfl.const"() <{value = dense<[[-0.0625, 0.125], [0.25, 0.5]]> : tensor<2x2xf32>}> {names = ["w_in_3"]} : () -> tensor<2x2xf32>
  %8 = "tfl.const"() <{value = dense<[[-0.25, 0.125], [0.25, -0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_0"]} : () -> tensor<2x2xf32>
  %9 = "tfl.const"() <{value = dense<[[-0.5, 0.5], [-0.25, -0.125]]> : tensor<2x2xf32>}> {names = ["w_rec_1"]} : () -> tensor<2x2xf32>
  %10 = "tfl.const"() <{value = dense<[[0.375, 0.125], [-0.0625, 0.25]]> : tensor<2x2xf32>}> {names = ["w_rec_2"]} : () -> tensor<2x2xf32>
  %11 = "tfl.const"() <{value = dense<[[-0.5, 0.25], [-0.125, -0.375]]> : tensor<2x2xf32>}> {names = ["w_rec_3"]} : () -> tensor<2x2xf32>
  %12 = "tfl.const"() <{value = dense<[0.16, 0.43]> : tensor<2xf32>}> {names = ["bias_0"]} : () -> tensor<2xf32>
  %13 = "tfl.const"() <{value = dense<[-0.29, 0.13]> : tensor<2xf32>}> {names = ["bias_1"]} : () -> tensor<2xf32>
  %14 = "tfl.const"() <{value = dense<[-0.2, 0.24]> : tensor<2xf32>}> {names = ["bias_2"]} : () -> tensor<2xf32>
  %15 = "tfl.const"() <{value = dense<[0.22, -0.28]> : tensor<2xf32>}> {names = ["bias_3"]} : () -> tensor<2xf32>
  %16 = "tfl.variable"() {names = ["output_state"]} : () -> tensor<1x2xf32>
  %17 = "tfl.variable"() {names = ["cell_state"]} : () -> tensor<1x2xf32>
  %18 = "tfl.unidirectional_sequence_lstm"(%2, %4, %5, %6, %7, %8, %9, %10, %11, %3, %3, %3, %12, %13, %14, %15, %3, %3, %16, %17, %3, %3, %3, %3) <{fused_activation_function = "RELU", time_major = false}> {names = ["lstm_out"], cell_stats = #quant.stats<-0.77, 0.42>} : (tensor<1x2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x2x2xf32>
  %19 = quant.qcast %18 : tensor<1x2x2xf32> -> tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>>
  %20 = quant.dcast %19 : tensor<1x2x2x!quant.uniform<i8:f32, 0.0025:44>> -> tensor<1x2x2xf32>
  func.return %20 : tensor<1x2x2xf32>
}
