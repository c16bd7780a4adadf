from evalstream.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TextMetric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TEXT_METRIC_UNSPECIFIED: _ClassVar[TextMetric]
    TEXT_METRIC_BLEU: _ClassVar[TextMetric]
    TEXT_METRIC_ROUGE: _ClassVar[TextMetric]
    TEXT_METRIC_METEOR: _ClassVar[TextMetric]
    TEXT_METRIC_BERTSCORE: _ClassVar[TextMetric]
TEXT_METRIC_UNSPECIFIED: TextMetric
TEXT_METRIC_BLEU: TextMetric
TEXT_METRIC_ROUGE: TextMetric
TEXT_METRIC_METEOR: TextMetric
TEXT_METRIC_BERTSCORE: TextMetric

class Box(_message.Message):
    __slots__ = ("x1", "y1", "x2", "y2", "label", "confidence")
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    X2_FIELD_NUMBER: _ClassVar[int]
    Y2_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    x1: float
    y1: float
    x2: float
    y2: float
    label: str
    confidence: float
    def __init__(self, x1: _Optional[float] = ..., y1: _Optional[float] = ..., x2: _Optional[float] = ..., y2: _Optional[float] = ..., label: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class ImageBoxes(_message.Message):
    __slots__ = ("image_id", "predictions", "ground_truth", "image_uri", "width", "height")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    GROUND_TRUTH_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    predictions: _containers.RepeatedCompositeFieldContainer[Box]
    ground_truth: _containers.RepeatedCompositeFieldContainer[Box]
    image_uri: str
    width: int
    height: int
    def __init__(self, image_id: _Optional[str] = ..., predictions: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., ground_truth: _Optional[_Iterable[_Union[Box, _Mapping]]] = ..., image_uri: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class BoxOptions(_message.Message):
    __slots__ = ("iou_thresholds", "confidence_threshold", "pr_curve", "pr_curve_max_points", "class_agnostic", "omit_images")
    IOU_THRESHOLDS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PR_CURVE_FIELD_NUMBER: _ClassVar[int]
    PR_CURVE_MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    CLASS_AGNOSTIC_FIELD_NUMBER: _ClassVar[int]
    OMIT_IMAGES_FIELD_NUMBER: _ClassVar[int]
    iou_thresholds: _containers.RepeatedScalarFieldContainer[float]
    confidence_threshold: float
    pr_curve: bool
    pr_curve_max_points: int
    class_agnostic: bool
    omit_images: bool
    def __init__(self, iou_thresholds: _Optional[_Iterable[float]] = ..., confidence_threshold: _Optional[float] = ..., pr_curve: _Optional[bool] = ..., pr_curve_max_points: _Optional[int] = ..., class_agnostic: _Optional[bool] = ..., omit_images: _Optional[bool] = ...) -> None: ...

class BoxBatch(_message.Message):
    __slots__ = ("images", "options", "checkpoint")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedCompositeFieldContainer[ImageBoxes]
    options: BoxOptions
    checkpoint: _common_pb2.CheckpointRef
    def __init__(self, images: _Optional[_Iterable[_Union[ImageBoxes, _Mapping]]] = ..., options: _Optional[_Union[BoxOptions, _Mapping]] = ..., checkpoint: _Optional[_Union[_common_pb2.CheckpointRef, _Mapping]] = ...) -> None: ...

class BoxScores(_message.Message):
    __slots__ = ("iou_threshold", "tp", "fp", "fn", "precision", "recall", "f1", "mean_iou")
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TP_FIELD_NUMBER: _ClassVar[int]
    FP_FIELD_NUMBER: _ClassVar[int]
    FN_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    MEAN_IOU_FIELD_NUMBER: _ClassVar[int]
    iou_threshold: float
    tp: int
    fp: int
    fn: int
    precision: _common_pb2.Figure
    recall: _common_pb2.Figure
    f1: _common_pb2.Figure
    mean_iou: _common_pb2.Figure
    def __init__(self, iou_threshold: _Optional[float] = ..., tp: _Optional[int] = ..., fp: _Optional[int] = ..., fn: _Optional[int] = ..., precision: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., recall: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., f1: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., mean_iou: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ...) -> None: ...

class ImageResult(_message.Message):
    __slots__ = ("index", "image_id", "scores")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    index: int
    image_id: str
    scores: _containers.RepeatedCompositeFieldContainer[BoxScores]
    def __init__(self, index: _Optional[int] = ..., image_id: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[BoxScores, _Mapping]]] = ...) -> None: ...

class PrCurve(_message.Message):
    __slots__ = ("iou_threshold", "confidence", "precision", "recall", "f1", "best_confidence", "best_f1", "best_precision", "best_recall", "average_precision")
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    BEST_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    BEST_F1_FIELD_NUMBER: _ClassVar[int]
    BEST_PRECISION_FIELD_NUMBER: _ClassVar[int]
    BEST_RECALL_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_PRECISION_FIELD_NUMBER: _ClassVar[int]
    iou_threshold: float
    confidence: _containers.RepeatedScalarFieldContainer[float]
    precision: _containers.RepeatedScalarFieldContainer[float]
    recall: _containers.RepeatedScalarFieldContainer[float]
    f1: _containers.RepeatedScalarFieldContainer[float]
    best_confidence: float
    best_f1: _common_pb2.Figure
    best_precision: _common_pb2.Figure
    best_recall: _common_pb2.Figure
    average_precision: _common_pb2.Figure
    def __init__(self, iou_threshold: _Optional[float] = ..., confidence: _Optional[_Iterable[float]] = ..., precision: _Optional[_Iterable[float]] = ..., recall: _Optional[_Iterable[float]] = ..., f1: _Optional[_Iterable[float]] = ..., best_confidence: _Optional[float] = ..., best_f1: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., best_precision: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., best_recall: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., average_precision: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ...) -> None: ...

class BoxResult(_message.Message):
    __slots__ = ("batch_index", "images", "batch", "running", "pr_curves", "images_total", "boxes_total")
    BATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PR_CURVES_FIELD_NUMBER: _ClassVar[int]
    IMAGES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BOXES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    batch_index: int
    images: _containers.RepeatedCompositeFieldContainer[ImageResult]
    batch: _containers.RepeatedCompositeFieldContainer[BoxScores]
    running: _containers.RepeatedCompositeFieldContainer[BoxScores]
    pr_curves: _containers.RepeatedCompositeFieldContainer[PrCurve]
    images_total: int
    boxes_total: int
    def __init__(self, batch_index: _Optional[int] = ..., images: _Optional[_Iterable[_Union[ImageResult, _Mapping]]] = ..., batch: _Optional[_Iterable[_Union[BoxScores, _Mapping]]] = ..., running: _Optional[_Iterable[_Union[BoxScores, _Mapping]]] = ..., pr_curves: _Optional[_Iterable[_Union[PrCurve, _Mapping]]] = ..., images_total: _Optional[int] = ..., boxes_total: _Optional[int] = ...) -> None: ...

class TextPair(_message.Message):
    __slots__ = ("specimen_id", "prediction", "references", "question", "image_uri", "width", "height")
    SPECIMEN_ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    specimen_id: str
    prediction: str
    references: _containers.RepeatedScalarFieldContainer[str]
    question: str
    image_uri: str
    width: int
    height: int
    def __init__(self, specimen_id: _Optional[str] = ..., prediction: _Optional[str] = ..., references: _Optional[_Iterable[str]] = ..., question: _Optional[str] = ..., image_uri: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class BleuOptions(_message.Message):
    __slots__ = ("tokenize", "lowercase", "smooth_method", "smooth_value")
    TOKENIZE_FIELD_NUMBER: _ClassVar[int]
    LOWERCASE_FIELD_NUMBER: _ClassVar[int]
    SMOOTH_METHOD_FIELD_NUMBER: _ClassVar[int]
    SMOOTH_VALUE_FIELD_NUMBER: _ClassVar[int]
    tokenize: str
    lowercase: bool
    smooth_method: str
    smooth_value: float
    def __init__(self, tokenize: _Optional[str] = ..., lowercase: _Optional[bool] = ..., smooth_method: _Optional[str] = ..., smooth_value: _Optional[float] = ...) -> None: ...

class RougeOptions(_message.Message):
    __slots__ = ("use_stemmer", "rouge_lsum")
    USE_STEMMER_FIELD_NUMBER: _ClassVar[int]
    ROUGE_LSUM_FIELD_NUMBER: _ClassVar[int]
    use_stemmer: bool
    rouge_lsum: bool
    def __init__(self, use_stemmer: _Optional[bool] = ..., rouge_lsum: _Optional[bool] = ...) -> None: ...

class MeteorOptions(_message.Message):
    __slots__ = ("alpha", "beta", "gamma")
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    BETA_FIELD_NUMBER: _ClassVar[int]
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    alpha: float
    beta: float
    gamma: float
    def __init__(self, alpha: _Optional[float] = ..., beta: _Optional[float] = ..., gamma: _Optional[float] = ...) -> None: ...

class BertScoreOptions(_message.Message):
    __slots__ = ("idf", "rescale_with_baseline")
    IDF_FIELD_NUMBER: _ClassVar[int]
    RESCALE_WITH_BASELINE_FIELD_NUMBER: _ClassVar[int]
    idf: bool
    rescale_with_baseline: bool
    def __init__(self, idf: _Optional[bool] = ..., rescale_with_baseline: _Optional[bool] = ...) -> None: ...

class TextOptions(_message.Message):
    __slots__ = ("metrics", "bleu", "rouge", "meteor", "bertscore", "omit_pairs")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    BLEU_FIELD_NUMBER: _ClassVar[int]
    ROUGE_FIELD_NUMBER: _ClassVar[int]
    METEOR_FIELD_NUMBER: _ClassVar[int]
    BERTSCORE_FIELD_NUMBER: _ClassVar[int]
    OMIT_PAIRS_FIELD_NUMBER: _ClassVar[int]
    metrics: _containers.RepeatedScalarFieldContainer[TextMetric]
    bleu: BleuOptions
    rouge: RougeOptions
    meteor: MeteorOptions
    bertscore: BertScoreOptions
    omit_pairs: bool
    def __init__(self, metrics: _Optional[_Iterable[_Union[TextMetric, str]]] = ..., bleu: _Optional[_Union[BleuOptions, _Mapping]] = ..., rouge: _Optional[_Union[RougeOptions, _Mapping]] = ..., meteor: _Optional[_Union[MeteorOptions, _Mapping]] = ..., bertscore: _Optional[_Union[BertScoreOptions, _Mapping]] = ..., omit_pairs: _Optional[bool] = ...) -> None: ...

class TextBatch(_message.Message):
    __slots__ = ("pairs", "options", "checkpoint")
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    pairs: _containers.RepeatedCompositeFieldContainer[TextPair]
    options: TextOptions
    checkpoint: _common_pb2.CheckpointRef
    def __init__(self, pairs: _Optional[_Iterable[_Union[TextPair, _Mapping]]] = ..., options: _Optional[_Union[TextOptions, _Mapping]] = ..., checkpoint: _Optional[_Union[_common_pb2.CheckpointRef, _Mapping]] = ...) -> None: ...

class Score(_message.Message):
    __slots__ = ("name", "figure", "signature", "note")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FIGURE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    name: str
    figure: _common_pb2.Figure
    signature: str
    note: str
    def __init__(self, name: _Optional[str] = ..., figure: _Optional[_Union[_common_pb2.Figure, _Mapping]] = ..., signature: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class PairResult(_message.Message):
    __slots__ = ("index", "specimen_id", "scores")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SPECIMEN_ID_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    index: int
    specimen_id: str
    scores: _containers.RepeatedCompositeFieldContainer[Score]
    def __init__(self, index: _Optional[int] = ..., specimen_id: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[Score, _Mapping]]] = ...) -> None: ...

class TextResult(_message.Message):
    __slots__ = ("batch_index", "pairs", "batch", "running", "pairs_total")
    BATCH_INDEX_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PAIRS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    batch_index: int
    pairs: _containers.RepeatedCompositeFieldContainer[PairResult]
    batch: _containers.RepeatedCompositeFieldContainer[Score]
    running: _containers.RepeatedCompositeFieldContainer[Score]
    pairs_total: int
    def __init__(self, batch_index: _Optional[int] = ..., pairs: _Optional[_Iterable[_Union[PairResult, _Mapping]]] = ..., batch: _Optional[_Iterable[_Union[Score, _Mapping]]] = ..., running: _Optional[_Iterable[_Union[Score, _Mapping]]] = ..., pairs_total: _Optional[int] = ...) -> None: ...
