"""The paper's toy experiment (supplementary Sec. 1): predict the rotation of rectangles with a naive,
a regression-based (FOMM-style) and a PCA-based (MRAA-style) network, for growing training sets.

Run it with ``mraa toy --out DIR`` or :func:`run_toy`; plot with :func:`plot_error_vs_size` (lazy
matplotlib import).
"""

from mraa.toy.dataset import make_rectangles, make_test_set, render_rectangle, sample_rectangle
from mraa.toy.networks import (
    NETWORKS,
    NaiveNet,
    PCANet,
    RegressionNet,
    build_network,
    pca_angle,
    wrap_axis_angle,
)
from mraa.toy.plot import plot_error_vs_size  # matplotlib is imported only when plotting
from mraa.toy.runner import (
    QUICK_CONFIG,
    RunResult,
    ToyConfig,
    read_results_csv,
    results_table,
    run_toy,
    train_run,
    write_results_csv,
)

__all__ = [
    "NETWORKS",
    "QUICK_CONFIG",
    "NaiveNet",
    "PCANet",
    "RegressionNet",
    "RunResult",
    "ToyConfig",
    "build_network",
    "make_rectangles",
    "make_test_set",
    "pca_angle",
    "plot_error_vs_size",
    "read_results_csv",
    "render_rectangle",
    "results_table",
    "run_toy",
    "sample_rectangle",
    "train_run",
    "wrap_axis_angle",
    "write_results_csv",
]
