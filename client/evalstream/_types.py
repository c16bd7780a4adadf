"""Plain result and input types of the client: frozen dataclasses, not protobuf messages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Box:
    """An axis-aligned box in pixels (x right, y down), with its label and confidence.

    Ground-truth boxes ignore `confidence`.

    Example:
        >>> Box(10, 20, 50, 80, label="dog", confidence=0.9).x2
        50
    """

    x1: float
    y1: float
    x2: float
    y2: float
    label: str = ""
    confidence: float = 1.0

    @classmethod
    def from_xywh(
        cls, x: float, y: float, w: float, h: float, *, label: str = "", confidence: float = 1.0
    ) -> Box:
        """A box from COCO's [x, y, width, height].

        Example:
            >>> Box.from_xywh(10, 20, 40, 60).y2
            80
        """
        return cls(x, y, x + w, y + h, label, confidence)


@dataclass(frozen=True, slots=True)
class ImageBoxes:
    """Predictions and ground truth of one image (one specimen).

    `image_uri` says where a reviewer finds the image: an http, https, file or s3
    URI, or a path relative to the server's ``--image-root``; `width` and `height`
    are its size in pixels (both or neither; 0 when unknown). The server checks
    them and stores them with the specimen when the stream names a checkpoint.

    Example:
        >>> ImageBoxes("img-1", image_uri="https://example.org/1.jpg", width=640, height=480).width
        640
    """

    image_id: str
    predictions: tuple[Box, ...] = ()
    ground_truth: tuple[Box, ...] = ()
    image_uri: str = ""
    width: int = 0
    height: int = 0


@dataclass(frozen=True, slots=True)
class Figure:
    """A number with its quality band; `value` is None when undefined, and `reason` says why."""

    value: float | None
    band: str = ""
    reason: str = ""

    def __str__(self) -> str:
        return "n/a" if self.value is None else f"{self.value:.4f}"


@dataclass(frozen=True, slots=True)
class BoxScores:
    """TP/FP/FN and the figures they give at one IoU threshold."""

    iou_threshold: float
    tp: int
    fp: int
    fn: int
    precision: Figure
    recall: Figure
    f1: Figure
    mean_iou: Figure


@dataclass(frozen=True, slots=True)
class ImageResult:
    """Scores of one image, one entry per IoU threshold."""

    index: int
    image_id: str
    scores: tuple[BoxScores, ...]


@dataclass(frozen=True, slots=True)
class PrCurve:
    """Precision-recall trade-off over confidence at one IoU threshold."""

    iou_threshold: float
    confidence: tuple[float, ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    best_confidence: float | None
    best_f1: Figure
    best_precision: Figure
    best_recall: Figure
    average_precision: Figure


@dataclass(frozen=True, slots=True)
class BoxResult:
    """The answer to one batch: its images, its aggregate and the running aggregate."""

    batch_index: int
    images: tuple[ImageResult, ...]
    batch: tuple[BoxScores, ...]
    running: tuple[BoxScores, ...]
    pr_curves: tuple[PrCurve, ...]
    images_total: int
    boxes_total: int


@dataclass(frozen=True, slots=True)
class BoxReport:
    """The outcome of `Client.score_boxes`: every image, and the totals over all of them."""

    images: tuple[ImageResult, ...]
    overall: tuple[BoxScores, ...]
    pr_curves: tuple[PrCurve, ...]
    images_total: int
    boxes_total: int
    batches: int


@dataclass(frozen=True, slots=True)
class TextScore:
    """One text score: its value (None when undefined), band, signature and remarks."""

    name: str
    value: float | None
    band: str = ""
    signature: str = ""
    reason: str = ""
    note: str = ""

    def __str__(self) -> str:
        return "n/a" if self.value is None else f"{self.value:.4f}"


@dataclass(frozen=True, slots=True)
class PairResult:
    """Sentence-level scores of one pair, by name."""

    index: int
    specimen_id: str
    scores: dict[str, TextScore]


@dataclass(frozen=True, slots=True)
class TextResult:
    """The answer to one ScoreText batch."""

    batch_index: int
    pairs: tuple[PairResult, ...]
    batch: dict[str, TextScore]
    running: dict[str, TextScore]
    pairs_total: int


@dataclass(frozen=True, slots=True)
class TextReport:
    """The outcome of `Client.score_text`: every pair, and corpus scores over all of them."""

    pairs: tuple[PairResult, ...]
    overall: dict[str, TextScore]
    pairs_total: int
    batches: int
