"""Dense prediction (docs/protocols.md, "Dense prediction"): surface normals on NYUv2 and semantic
segmentation on ADE20K. The scripts in ``surface-normal-estimation/`` and ``semantic-segmentation/``
are thin front ends over these modules (their folder names hold a hyphen, so they cannot be
imported)."""
