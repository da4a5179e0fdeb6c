"""The paper's tables, correlations with ImageNet top-1, and plots, from the results JSON files.

``gather_results`` reads ``results/<protocol>/*.json`` into pandas frames (``gather``);
``build_tables`` turns them into the paper's tables, models x datasets and averages (``tables``);
``compare_with_paper`` sets them beside the published numbers (``paper``); ``correlation_table``
correlates each column with ImageNet top-1 on logit-transformed scores, as the paper does
(``correlation``); ``write_report`` writes everything as Markdown, CSV and PNG (``write``,
``plots``).
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
from transfer.report.write import Report, write_report, write_table

__all__ = [
    "DENSE_PERCENT", "DETECTION_METRICS", "DETECTION_MODES", "LOGIT_EPS", "NORMALS_KEYS",
    "PAPER_DIR", "SCORE_PROTOCOLS", "SEGMENTATION_KEYS", "Correlation", "Report", "ReportError",
    "Results", "Table", "add_averages", "build_tables", "calibration_table", "column_scores",
    "compare_with_paper", "correlate", "correlation_table", "dataset_order", "dense_table",
    "detection_table", "gather_results", "imagenet_top1", "load_paper_tables", "logit_percent",
    "model_order", "plot_correlations", "plot_heatmap", "score_tables", "write_report",
    "write_table",
]
