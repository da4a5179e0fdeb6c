"""One module per protocol, each composing backbone, features, classifiers, statistics and records:
``linear``, ``knn``, ``few_shot`` and ``finetune`` (its training loop in ``finetune_loop``) each
have ``build_parser``, ``result_files`` and ``run``, which the top-level scripts call; ``detection``
records detectron2 runs; ``dense/`` holds surface normals and segmentation; ``arguments`` the
options every script shares with one meaning."""
