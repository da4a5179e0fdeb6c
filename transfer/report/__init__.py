"""The paper's tables, correlations with ImageNet top-1, and plots, from the results JSON files.

``gather_results`` reads ``results/<protocol>/*.json`` into pandas frames (``gather``);
``build_tables`` turns them into the paper's tables, models x datasets and averages (``tables``);
``compare_with_paper`` sets them beside the published numbers (``paper``); ``correlation_table``
correlates each column with ImageNet top-1 on logit-transformed scores, as the paper does
(``correlation``); ``write_report`` writes everything as Markdown, CSV and PNG (``write``,
``plots``) and as one self-contained HTML page (``page``, with the per-dataset forest plots and
pair matrices of ``forest``); models are shown by their ``--model`` name or ``--label``
(``names``).
"""

from transfer.report.correlation import (
    LOGIT_EPS,
    Correlation,
    column_scores,
    correlate,
    correlation_table,
    imagenet_top1,
    logit_percent,
)
from transfer.report.gather import (
    DETECTION_METRICS,
    DETECTION_MODES,
    NORMALS_KEYS,
    SCORE_PROTOCOLS,
    SEGMENTATION_KEYS,
    ReportError,
    Results,
    gather_results,
)
from transfer.report.paper import PAPER_DIR, compare_with_paper, load_paper_tables
from transfer.report.plots import plot_correlations, plot_heatmap
from transfer.report.significance import (
    PAIRED_PROTOCOLS,
    DatasetComparison,
    add_significance,
    compare_dataset,
    load_outputs,
    significance_for,
)
from transfer.report.tables import (
    DENSE_PERCENT,
    Table,
    add_averages,
    build_tables,
    calibration_table,
    dataset_order,
    dense_table,
    detection_table,
    model_order,
    score_tables,
)
from transfer.report.write import DEFAULT_RESAMPLES, Report, write_report, write_table

__all__ = [
    "Correlation", "DEFAULT_RESAMPLES", "DENSE_PERCENT", "DETECTION_METRICS", "DETECTION_MODES",
    "DatasetComparison", "LOGIT_EPS", "NORMALS_KEYS", "PAIRED_PROTOCOLS", "PAPER_DIR", "Report",
    "ReportError", "Results", "SCORE_PROTOCOLS", "SEGMENTATION_KEYS", "Table", "add_averages",
    "add_significance", "build_tables", "calibration_table", "column_scores", "compare_dataset",
    "compare_with_paper", "correlate", "correlation_table", "dataset_order", "dense_table",
    "detection_table", "gather_results", "imagenet_top1", "load_outputs", "load_paper_tables",
    "logit_percent", "model_order", "plot_correlations", "plot_heatmap", "score_tables",
    "significance_for", "write_report", "write_table",
]
