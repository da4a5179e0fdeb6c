"""One record per dataset: where it lives, how it is scored, which splits it offers.

Everything that differs per dataset sits here so protocols never pass such facts by hand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from datasets.errors import DatasetError

METRICS = ("accuracy", "mean_per_class_accuracy", "voc11_map")
MANY_SHOT_SPLITS = ("train", "val", "trainval", "test", "fewshot")


@dataclass(frozen=True)
class DatasetSpec:
    """Facts about one dataset (docs/protocols.md, "Datasets and splits")."""

    name: str
    folder: str
    num_classes: int
    metric: str
    splits: tuple[str, ...]
    predefined_val: bool
    few_shot_only: bool
    multilabel: bool
    default_image_size: int
    demo: bool
    download_hint: str
    layout: str = ""
    auto_download: bool = False
    paper: bool = True  # one of the paper's datasets (its averages and sweeps' "all")

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"{self.name}: metric {self.metric!r} not in {METRICS}")


def _many_shot(
    name: str,
    folder: str,
    num_classes: int,
    metric: str,
    *,
    predefined_val: bool,
    layout: str,
    hint: str,
    multilabel: bool = False,
    auto_download: bool = False,
    paper: bool = True,
) -> DatasetSpec:
    splits = MANY_SHOT_SPLITS if name != "voc2007" else MANY_SHOT_SPLITS[:-1]
    return DatasetSpec(
        name=name,
        folder=folder,
        num_classes=num_classes,
        metric=metric,
        splits=splits,
        predefined_val=predefined_val,
        few_shot_only=False,
        multilabel=multilabel,
        default_image_size=224,
        demo=False,
        download_hint=hint,
        layout=layout,
        auto_download=auto_download,
        paper=paper,
    )


def _cross_domain(
    name: str, folder: str, num_classes: int, *, layout: str, hint: str
) -> DatasetSpec:
    return DatasetSpec(
        name=name,
        folder=folder,
        num_classes=num_classes,
        metric="accuracy",
        splits=("fewshot",),
        predefined_val=False,
        few_shot_only=True,
        multilabel=False,
        default_image_size=224,
        demo=False,
        download_hint=hint,
        layout=layout,
    )


_SPECS = [
    _many_shot(
        "aircraft",
        "Aircraft",
        100,
        "mean_per_class_accuracy",
        predefined_val=True,
        layout=(
            "Aircraft/\n"
            "  data/images_variant_train.txt   lines '<id> <variant name>'\n"
            "  data/images_variant_val.txt\n"
            "  data/images_variant_test.txt\n"
            "  data/images/<id>.jpg"
        ),
        hint=(
            "FGVC-Aircraft 2013b: https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/ "
            "(`python -m datasets download aircraft`); move fgvc-aircraft-2013b/data to "
            "Aircraft/data"
        ),
    ),
    _many_shot(
        "caltech101",
        "Caltech101",
        102,
        "mean_per_class_accuracy",
        predefined_val=False,
        layout=(
            "Caltech101/\n"
            "  caltech101/101_ObjectCategories/<class>/<file>.jpg   (incl. BACKGROUND_Google)\n"
            "  splits: datasets/caltech101_splits/{train,test}.txt shipped with this project"
        ),
        hint=(
            "https://data.caltech.edu/records/mzrjq-6wc02 (101_ObjectCategories.tar.gz); "
            "extract into Caltech101/caltech101/"
        ),
    ),
    _many_shot(
        "cars",
        "Cars",
        196,
        "accuracy",
        predefined_val=False,
        layout=(
            "Cars/\n"
            "  devkit/cars_train_annos.mat            ('annotations': fname, class 1..196)\n"
            "  devkit/cars_test_annos_withlabels.mat\n"
            "  cars_train/<fname>.jpg\n"
            "  cars_test/<fname>.jpg"
        ),
        hint=(
            "Stanford Cars (the original site is gone): a mirror such as "
            "https://www.kaggle.com/datasets/jessicali9530/stanford-cars-dataset plus "
            "cars_test_annos_withlabels.mat (from the devkit's test labels); put the .mat files "
            "in Cars/devkit/ and the images in Cars/cars_train/, Cars/cars_test/"
        ),
    ),
    _many_shot(
        "cifar10",
        "CIFAR10",
        10,
        "accuracy",
        predefined_val=False,
        auto_download=True,
        layout=(
            "CIFAR10/\n  cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta   (pickles)"
        ),
        hint="downloaded automatically by torchvision (`python -m datasets download cifar10`)",
    ),
    _many_shot(
        "cifar100",
        "CIFAR100",
        100,
        "accuracy",
        predefined_val=False,
        auto_download=True,
        layout="CIFAR100/\n  cifar-100-python/train, test, meta   (pickles)",
        hint="downloaded automatically by torchvision (`python -m datasets download cifar100`)",
    ),
    _many_shot(
        "dtd",
        "DTD",
        47,
        "accuracy",
        predefined_val=True,
        layout=(
            "DTD/\n"
            "  labels/{train,val,test}1.txt   lines '<class>/<file>'\n"
            "  images/<class>/<file>.jpg"
        ),
        hint=("https://www.robots.ox.ac.uk/~vgg/data/dtd/ (`python -m datasets download dtd`)"),
    ),
    _many_shot(
        "flowers",
        "Flowers",
        102,
        "mean_per_class_accuracy",
        predefined_val=True,
        layout=(
            "Flowers/\n"
            "  setid.mat        (trnid, valid, tstid)\n"
            "  imagelabels.mat  (labels 1..102)\n"
            "  jpg/image_%05d.jpg"
        ),
        hint=(
            "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/ "
            "(`python -m datasets download flowers`)"
        ),
    ),
    _many_shot(
        "food",
        "Food",
        101,
        "accuracy",
        predefined_val=False,
        layout=(
            "Food/\n"
            "  food-101/meta/{train,test}.json   (class -> ['class/id', ...])\n"
            "  food-101/meta/classes.txt\n"
            "  food-101/images/<class>/<id>.jpg"
        ),
        hint=(
            "https://data.vision.ee.ethz.ch/cvl/datasets_extra/food-101/ "
            "(`python -m datasets download food`)"
        ),
    ),
    _many_shot(
        "pets",
        "Pets",
        37,
        "mean_per_class_accuracy",
        predefined_val=False,
        layout=(
            "Pets/\n"
            "  annotations/{trainval,test}.txt\n"
            "      lines '<name> <class-id 1..37> <species> <breed>'\n"
            "  images/<name>.jpg"
        ),
        hint=("https://www.robots.ox.ac.uk/~vgg/data/pets/ (`python -m datasets download pets`)"),
    ),
    _many_shot(
        "sun397",
        "SUN397",
        397,
        "accuracy",
        predefined_val=False,
        layout=(
            "SUN397/\n"
            "  ClassName.txt                  lines '/a/abbey'\n"
            "  Training_01.txt, Testing_01.txt   lines '/a/abbey/sun_x.jpg'\n"
            "  a/abbey/sun_x.jpg ..."
        ),
        hint=(
            "https://vision.princeton.edu/projects/2010/SUN/ (SUN397.tar.gz and "
            "Partitions.zip; put Training_01.txt, Testing_01.txt, ClassName.txt in SUN397/)"
        ),
    ),
    _many_shot(
        "voc2007",
        "VOC2007",
        20,
        "voc11_map",
        predefined_val=True,
        multilabel=True,
        layout=(
            "VOC2007/\n"
            "  VOCdevkit/VOC2007/ImageSets/Main/<class>_{train,val,test}.txt\n"
            "      lines '<id> <-1|0|1>'\n"
            "  VOCdevkit/VOC2007/JPEGImages/<id>.jpg"
        ),
        hint=(
            "http://host.robots.ox.ac.uk/pascal/VOC/voc2007/ (VOCtrainval_06-Nov-2007.tar and "
            "VOCtest_06-Nov-2007.tar; `python -m datasets download voc2007`)"
        ),
    ),
    _cross_domain(
        "cropdiseases",
        "CropDiseases",
        38,
        layout="CropDiseases/\n  dataset/train/<class>/<image>",
        hint=(
            "BSCD-FSL: https://www.kaggle.com/datasets/saroz014/plant-disease "
            "(extract so that CropDiseases/dataset/train/<class>/ exists)"
        ),
    ),
    _cross_domain(
        "eurosat",
        "EuroSAT",
        10,
        layout="EuroSAT/\n  2750/<class>/<image>.jpg",
        hint=(
            "BSCD-FSL: http://madm.dfki.de/files/sentinel/EuroSAT.zip "
            "(`python -m datasets download eurosat`)"
        ),
    ),
    _cross_domain(
        "isic",
        "ISIC",
        7,
        layout=(
            "ISIC/\n"
            "  ISIC2018_Task3_Training_GroundTruth/ISIC2018_Task3_Training_GroundTruth.csv\n"
            "  ISIC2018_Task3_Training_Input/<id>.jpg"
        ),
        hint=(
            "BSCD-FSL: https://challenge.isic-archive.com/data/#2018 (Task 3 training input "
            "and ground truth)"
        ),
    ),
    _cross_domain(
        "chestx",
        "ChestX",
        7,
        layout="ChestX/\n  Data_Entry_2017.csv\n  images/<name>.png",
        hint=(
            "BSCD-FSL: https://www.kaggle.com/datasets/nih-chest-xrays/data "
            "(Data_Entry_2017.csv and all images/ folders merged into ChestX/images/)"
        ),
    ),
    _many_shot(
        "fashion-mnist",
        "FashionMNIST",
        10,
        "accuracy",
        predefined_val=False,
        auto_download=True,
        paper=False,
        layout=(
            "FashionMNIST/\n"
            "  train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz   (gzipped IDX)\n"
            "  t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz"
        ),
        hint=(
            "not in the paper: Zalando's 70,000 28x28 grey photos of clothing "
            "(https://github.com/zalandoresearch/fashion-mnist); linked from Debian's "
            "`apt-get install dataset-fashion-mnist` where installed, else downloaded "
            "(`python -m datasets download fashion-mnist`)"
        ),
    ),
    DatasetSpec(
        name="digits",
        folder="",
        num_classes=10,
        metric="accuracy",
        splits=MANY_SHOT_SPLITS,
        predefined_val=False,
        few_shot_only=False,
        multilabel=False,
        default_image_size=64,
        demo=True,
        download_hint="bundled with scikit-learn (sklearn.datasets.load_digits); no files needed",
        layout="(none: scikit-learn's bundled 8x8 digits)",
    ),
]

DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in _SPECS}

#: The paper's datasets (no demo or added set): its averages are over these lists.
PAPER_DATASETS: tuple[str, ...] = tuple(s.name for s in _SPECS if s.paper and not s.demo)
#: Table 1's eleven many-shot sets (linear and finetune averages).
MANY_SHOT: tuple[str, ...] = tuple(n for n in PAPER_DATASETS if not DATASETS[n].few_shot_only)
#: The four cross-domain sets, few-shot only (Table 3).
CROSS_DOMAIN: tuple[str, ...] = tuple(n for n in PAPER_DATASETS if DATASETS[n].few_shot_only)


def get_dataset_spec(name: str) -> DatasetSpec:
    """Return the record of ``name``; unknown names raise a DatasetError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError as error:
        raise DatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}"
        ) from error


def default_data_root() -> Path:
    """Env ``SSL_TRANSFER_DATA`` if set, else ``<repo root>/../data`` as in the original."""
    env = os.environ.get("SSL_TRANSFER_DATA")
    if env:
        return Path(env).expanduser()
    repo_root = Path(__file__).resolve().parent.parent
    return repo_root.parent / "data"


def dataset_dir(spec: DatasetSpec, data_root: str | os.PathLike | None) -> Path:
    """The folder of ``spec`` under ``data_root`` (default: default_data_root())."""
    root = Path(data_root).expanduser() if data_root is not None else default_data_root()
    return root / spec.folder
