"""The mechanics behind the scripts, one folder per stage of the data flow:

    models/ (Backbone)   datasets/ (Split)
            \\                /
        transfer.features      extract once per (checkpoint, split, transform, precision); cache
                 |
        transfer.classifiers   logistic regression, weighted kNN, ProtoNet: arrays in, scores out
                 |
        transfer.stats         metrics, bootstrap intervals, paired comparisons, calibration
                 |
        transfer.records       one JSON + per-image .npz per run, with provenance
                 |
        transfer.report        tables, significance, correlations, plots, the HTML page

``transfer.protocols`` composes those stages, one module per protocol (linear, knn, few_shot,
finetune, detection, dense); the top-level scripts parse options, call ``protocols.<name>.run``,
print and write. ``transfer.sweep`` launches the grid of scripts (here or on Slurm), apart from
everything else. ``transfer.runtime`` (device, precision, distributed, checkpoints) and the
leaves ``errors``, ``atomic`` and ``console`` (log lines and progress bars that stay readable in
a log file) serve every stage. Imports only go down this picture; the ``datasets`` and ``models``
packages import nothing of ``transfer`` but the leaves (tests/test_layers.py enforces both).
"""
