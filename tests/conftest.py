"""Tests never download: huggingface_hub (and so timm) stays offline in every test and in the
scripts the tests start (they inherit the environment)."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
