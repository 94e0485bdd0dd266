// RUN: echo '{"seq": [-2.0, 2.0], "cell_state": [-0.77, 0.42], "lstm_out": [-0.3, 0.4]}' > %t.json
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"}' | filecheck %s
// RUN: tflquant-opt %s -p 'annotate-calibration{stats-file="%t.json"},annotate-calibration{stats-file="%t.json"}' | filecheck %s

// Calibration records an LSTM's cell state (every step) under the state variable's name; the
// variable itself is not an activation, so the range goes onto the LSTM as `cell_stats`.

// CHECK-LABEL: func.func @lstm
// CHECK:         %[[X:.*]] = quant.stats %x, <-2.0, 2.0> : tensor<1x2x2xf32>
// CHECK:         %[[C:.*]] = "tfl.variable"() {names = ["cell_state"]}
// CHECK-NOT:     quant.stats %[[C]]
// CHECK:         %[[L:.*]] = "tfl.unidirectional_sequence_lstm"(%[[X]], {{.*}}) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"], cell_stats = #quant.stats<-0.77, 0.42>}
// CHECK-NEXT:    quant.stats %[[L]], <-0.3, 0.4>
// CHECK-NOT:     quant.stats

func.func @lstm(%x: tensor<1x2x2xf32> {tfl.name = "seq"}) -> tensor<1x2x2xf32> {
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
  %18 = "tfl.unidirectional_sequence_lstm"(%x, %4, %5, %6, %7, %8, %9, %10, %11, %3, %3, %3, %12, %13, %14, %15, %3, %3, %16, %17, %3, %3, %3, %3) <{fused_activation_function = "TANH", time_major = false}> {names = ["lstm_out"]} : (tensor<1x2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, tensor<2x2xf32>, none, none, none, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, tensor<2xf32>, none, none, tensor<1x2xf32>, tensor<1x2xf32>, none, none, none, none) -> tensor<1x2x2xf32>
  func.return %18 : tensor<1x2x2xf32>
}
