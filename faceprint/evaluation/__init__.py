"""Benchmarks, one module each: ``lfw`` (the embedding cache over ``faceprint.lfw``'s pairs and people),
``verification`` (1:1, the ten-fold protocol, ROC, TAR@FAR, plots), ``identification`` (open-set
1:N), ``clustering`` (pairwise and BCubed scores) and ``video`` (identity and switches on a clip,
``watch`` against frame-by-frame identification).

Each module's ``*_report`` builds the report that ``faceprint eval`` prints; the names tests and
benchmarks use are re-exported here.
"""

from .clustering import bcubed_prf, cluster_report, pairwise_prf
from .identification import OpenSetSplit, identify_report, open_set_identification, open_set_split
from ..lfw import Pair, central, lfw_people, read_pairs
from .lfw import Embedded, cache_path, embed_for_report, embed_images, fingerprints, is_cached, part_names
from .verification import (LFW_REPORT_SCHEMA, MISSING_DISTANCE, FoldResult, OperatingPoint, auc, best_threshold,
                           lfw_report, operating_points, pair_distances, roc_curve, tar_at_far, ten_fold,
                           threshold_at_far, thresholds_report, write_plots)
from .video import (VideoScore, draw_disagreements, enrol_everyone, enrol_from_frame, identify_frames, load_truth,
                    video_against_reference, video_against_truth, video_report, video_score)

__all__ = [
    "bcubed_prf", "cluster_report", "pairwise_prf",
    "OpenSetSplit", "identify_report", "open_set_identification", "open_set_split",
    "Embedded", "Pair", "cache_path", "central", "embed_for_report", "embed_images", "fingerprints", "is_cached",
    "lfw_people", "part_names", "read_pairs",
    "LFW_REPORT_SCHEMA", "MISSING_DISTANCE", "FoldResult", "OperatingPoint", "auc", "best_threshold", "lfw_report",
    "operating_points", "pair_distances", "roc_curve", "tar_at_far", "ten_fold", "threshold_at_far",
    "thresholds_report", "write_plots",
    "VideoScore", "draw_disagreements", "enrol_everyone", "enrol_from_frame", "identify_frames", "load_truth",
    "video_against_reference", "video_against_truth", "video_report", "video_score",
]
