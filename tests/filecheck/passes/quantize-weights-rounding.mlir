// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 bits=4}' | filecheck %s --check-prefix=NEAR
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 bits=4 weight-rounding=mse}' | filecheck %s --check-prefix=MSE
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 bits=4 weight-rounding=auto}' | filecheck %s --check-prefix=MSE
// RUN: tflquant-opt %s -p 'quantize-weights{min-elements=4 weight-rounding=auto}' | filecheck %s --check-prefix=INT8
// RUN: not tflquant-opt %s -p 'quantize-weights{min-elements=4 bits=4 weight-rounding=gptq}' 2>&1 | filecheck %s --check-prefix=GPTQ
// RUN: not tflquant-opt %s -p 'quantize-weights{weight-rounding=best}' 2>&1 | filecheck %s --check-prefix=BAD

// Weight rounding without calibration data (tflquant-opt hands the pass no input
// statistics). Row 0 has one outlier (8) among ones: round to nearest takes absmax / 7 =
// 8/7; MSE clipping takes the scale 0.98 x 8/7 = 1.12, whose squared error over the row is
// 0.126 against 0.143 (every 1.0 is off by 0.12 instead of 0.14; the 8 by 0.16). Row 1 is
// flat: clipping cannot help, absmax stays. `auto` without statistics is MSE clipping for
// 4-bit weights and round to nearest for 8-bit ones; gptq needs the statistics. A data-aware
// rounding labels the constant (tflquant.rounding, the report's `rounding`; not written to files).
// NEAR: "tfl.const"() <{value = dense<{{\[\[}}7, 1, 1, 1, 1, 1, 1, 1], [7, 7, 7, 7, 7, 7, 7, 7]]> : tensor<2x8xi8>}> {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x8x!quant.uniform<i4<-7:7>:f32:0, {1.1428572, 0.071428575}>>
// MSE:  "tfl.const"() <{value = dense<{{\[\[}}7, 1, 1, 1, 1, 1, 1, 1], [7, 7, 7, 7, 7, 7, 7, 7]]> : tensor<2x8xi8>}> {names = ["w"], tflquant.rounding = "mse"{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x8x!quant.uniform<i4<-7:7>:f32:0, {1.1200001, 0.071428575}>>
// INT8: "tfl.const"() <{value = dense<{{\[\[}}127, 16, 16, 16, 16, 16, 16, 16], [127, 127, 127, 127, 127, 127, 127, 127]]> : tensor<2x8xi8>}> {names = ["w"]{{(, tflquant.sqnr = [^}]* : f64)?}}} : () -> tensor<2x8x!quant.uniform<i8<-127:127>:f32:0, {0.062992126, 0.003937008}>>
// GPTQ: quantize-weights: weight-rounding=gptq needs calibration data (the layers' input statistics): give representative data (--calibration DATA.npz), or use weight-rounding auto or mse
// BAD:  quantize-weights: weight-rounding must be one of nearest, mse, gptq, auto, got 'best'
func.func @fc(%x: tensor<1x8xf32>) -> tensor<1x2xf32> {
  %w = "tfl.const"() <{value = dense<[[8.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]]> : tensor<2x8xf32>}> {names = ["w"]} : () -> tensor<2x8xf32>
  %n = tfl.no_value
  %y = "tfl.fully_connected"(%x, %w, %n) {names = ["fc"]} : (tensor<1x8xf32>, tensor<2x8xf32>, none) -> tensor<1x2xf32>

  func.return %y : tensor<1x2xf32>
}
