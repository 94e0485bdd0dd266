// RUN: tflquant-opt %s -p 'insert-fake-quant,clip-weights' | filecheck %s
// RUN: tflquant-opt %s -p 'insert-fake-quant,clip-weights,clip-weights' | filecheck %s
// RUN: tflquant-opt %s -p 'insert-fake-quant,clip-weights{corrected=false}' | filecheck %s --check-prefix=MEAN
// RUN: sed -e 's/input_moments = #quant.moments<[^>]*>, //' %s | tflquant-opt -p 'insert-fake-quant,clip-weights' | filecheck %s --check-prefix=MEAN
// RUN: sed -e 's/, mean_sq = \[4.0, 1.0\]//' %s | tflquant-opt -p 'insert-fake-quant,clip-weights' | filecheck %s --check-prefix=MEAN

// clip-weights: per output channel, the scale r * absmax/127 (r in [0.5, 1]) with the least
// expected output error sum_k e_k^2 Var[x_k] (+ (sum_k e_k E[x_k])^2 with corrected=false).
// Input channel 0 is constant (mean 2, variance 0), channel 1 has variance 1.
// Row 0 = [1.0, 0.3]: clipping the 1.0 costs nothing in variance, so the scale that rounds
// 0.3 best wins: 0.68/127 (0.3 -> 56 steps = 0.29984). Row 1 = [0.5, 1.0] keeps absmax
// (1.0 exact). With the mean term (corrected=false: no correct-bias after it) clipping 1.0
// to 0.68 costs (0.32 * 2)^2 and absmax stays. The moments are the layer's `input_moments`
// (annotate-calibration attaches them; the pass reads nothing but the IR): without them, or
// without the mean squares, nothing changes.
// CHECK:      quant.qcast %w : tensor<2x2xf32> -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.005354331, 0.007874016}>>
// CHECK-NOT:  quant.qcast %w
// CHECK:      "tfl.fully_connected"({{.*}}) {input_moments = #quant.moments<mean = [2.0, 0.0], mean_sq = [4.0, 1.0]>, names = ["fc"], tflquant.weights_clipped}
// MEAN:       quant.qcast %w : tensor<2x2xf32> -> tensor<2x2x!quant.uniform<i8<-127:127>:f32:0, {0.007874016, 0.007874016}>>
func.func @fc(%x: tensor<1x2xf32> {tfl.name = "x"}) -> tensor<1x2xf32> {
  %xs = quant.stats %x, <-4.0, 4.0> : tensor<1x2xf32>
  %w = "tfl.const"() <{value = dense<[[1.0, 0.3], [0.5, 1.0]]> : tensor<2x2xf32>}> {names = ["fc/w"]} : () -> tensor<2x2xf32>
  %b = "tfl.const"() <{value = dense<[0.5, -0.25]> : tensor<2xf32>}> {names = ["fc/b"]} : () -> tensor<2xf32>
  %y = "tfl.fully_connected"(%xs, %w, %b) {input_moments = #quant.moments<mean = [2.0, 0.0], mean_sq = [4.0, 1.0]>, names = ["fc"]} : (tensor<1x2xf32>, tensor<2x2xf32>, tensor<2xf32>) -> tensor<1x2xf32>
  %ys = quant.stats %y, <-4.0, 4.0> : tensor<1x2xf32>
  func.return %ys : tensor<1x2xf32>
}
