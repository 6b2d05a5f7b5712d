"""The benchmark library behind ``eval.py`` (no import cycles; each module one job).

errors      EvalError and how an exception is written into a row
rows        the one row interface (image rows, set rows) and CodecRow / SetCodecRow
classical   PNG, WebP, JPEG 2000, JPEG-LS, JPEG XL and AVIF rows
model_rows  the iREC and BB-ANS rows on one model
sets        image sets and their loaders (PNG folders, bundled images, prepared tfds)
runner      codes, decodes and checks every image: Row, Results, run
report      summaries, the text table, results.json / compressai / rows.csv, one environment record
plots       the PNG plots (benchmark and ablation heatmaps)
suite       EvalSpec, build_codecs and run_suite: the wiring of eval.py
ablation    eval.py --ablation: iREC over Ω, 1+ε, B and the encoder's block_kl, final_choices
            (ablation_grid: grid and records; ablation_report: its outputs)
synthetic   synthetic posterior/prior pairs for the coder benchmarks
lossy       eval.py --lossy: LossyCodec (real files or a labelled rate estimate), the classical sweeps
            (JPEG 4:2:0/4:4:4, WebP, JPEG 2000, AVIF, JPEG XL, HEVC 4:4:4), per-image RD rows, curves
            (lossy_report: bd_table, CompressAI JSON, RD plots with the published curves of
            reference_curves.json, run_lossy_suite)
"""
