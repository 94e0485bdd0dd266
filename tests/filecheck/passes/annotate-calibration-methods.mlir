// Calibration methods at replay time: statistics saved with histograms (--save-stats) can be
// read back with any method; minmax gives the saved min/max, percentile a range inside it.
// RUN: tflquant quantize %S/../../../examples/digits_cnn.tflite -o %t.tflite --calibration %S/../../../examples/digits_cnn_calib.npz --save-stats %t.json
// RUN: tflquant-opt %S/../../../examples/digits_cnn.tflite -p 'annotate-calibration{stats-file="%t.json" method=minmax}' | filecheck %s --check-prefix=MINMAX
// RUN: tflquant-opt %S/../../../examples/digits_cnn.tflite -p 'annotate-calibration{stats-file="%t.json" method=percentile percentile=99.9}' | filecheck %s --check-prefix=PCT
// MINMAX:      quant.stats {{.*}}, <0.0, 1.0> : tensor<?x16x16x1xf32>
// MINMAX:      quant.stats {{.*}}, <0.0, 6.0> : tensor<?x16x16x16xf32>
// PCT:         quant.stats {{.*}}, <0.0, 1.0> : tensor<?x16x16x1xf32>
// PCT-NOT:     <0.0, 6.0>
// PCT:         quant.stats {{.*}}, <0.0, 5.{{[0-9]+}}> : tensor<?x16x16x16xf32>

// What is refused, in one line each.
// RUN: echo '{"input": [-1.0, 1.0]}' > %t.v1.json
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.v1.json" method=percentile percentile=99.9}' 2>&1 | filecheck %s --check-prefix=NOHIST
// NOHIST: error: annotate-calibration: {{.*}}calibration method percentile needs histograms{{.*}}recalibrate with --save-stats
// RUN: not tflquant-opt %s -p 'annotate-calibration{stats-file="%t.v1.json" method=bogus}' 2>&1 | filecheck %s --check-prefix=METHOD
// METHOD: error: unknown calibration method 'bogus': choose one of minmax, moving-average, percentile, mse, entropy

builtin.module {
  func.func @main(%arg0: tensor<1x4xf32> {tfl.name = "input"}) -> tensor<1x4xf32> {
    %r = "tfl.relu"(%arg0) {names = ["relu"]} : (tensor<1x4xf32>) -> tensor<1x4xf32>
    func.return %r : tensor<1x4xf32>
  }
}
