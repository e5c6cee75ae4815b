"""Use a FaceLiVT model on photos: MTCNN detection with 5 landmarks, ArcFace alignment, embedding,
verification with a calibrated threshold, and a searchable gallery of identities.

    >>> from facelivt.inference import FaceRecognizer
    >>> rec = FaceRecognizer("facelivt_s", "facelivt_s.safetensors")
    >>> score, same = rec.verify("a.jpg", "b.jpg")
    >>> rec.enroll("alice", ["alice1.jpg", "alice2.jpg"]); rec.identify("who.jpg", k=3)
"""
from facelivt.data.decode import ImageLoadError, ImageTooLargeError
from facelivt.inference.calibration import (
    Calibration,
    InvalidThresholdError,
    best_accuracy_threshold,
    calibrate_scores,
    check_threshold,
    read_pairs_list,
    threshold_at_far,
)
from facelivt.inference.detector import AlignedFace, Face, FaceDetector, NoFaceError, SeveralFacesError
from facelivt.inference.embed_stream import StreamReport, embed_to_folder, read_embeddings
from facelivt.inference.folders import AlignReport, EmbedRun, align_folder, embed_files, expand_inputs, failure_reason, list_files
from facelivt.inference.gallery import Gallery, Match, faiss_available, photo_sha256
from facelivt.inference.gallery_check import GalleryProblem
from facelivt.inference.gallery_store import (
    GalleryCheck,
    GalleryError,
    GalleryExistsError,
    GalleryMismatchError,
    GalleryNotFoundError,
    GalleryUnavailableError,
    GalleryWriteError,
    IdentityInfo,
    check_gallery,
)
from facelivt.inference.images import LoadedImage, load_image, open_image
from facelivt.inference.pipeline import DEFAULT_WORKERS, check_workers, prepare_in_order
from facelivt.inference.api import AnalysedFace, FaceAnalysis, FaceSearch, Verification, find, represent, verify
from facelivt.inference.mtcnn import ONet, PNet, RNet, detect_faces, load_mtcnn_nets
from facelivt.inference.recognizer import (
    DEFAULT_THRESHOLD,
    FACE_POLICIES,
    Comparison,
    EmbeddedFace,
    FaceRecognizer,
    PhotoFaces,
)
from facelivt.inference.mtcnn_weights import ENV_VAR as MTCNN_WEIGHTS_ENV, MTCNNWeightsNotFoundError, locate_mtcnn_weights

__all__ = [
    "AlignReport",
    "AnalysedFace",
    "EmbeddedFace",
    "FaceAnalysis",
    "FaceSearch",
    "Verification",
    "find",
    "represent",
    "verify",
    "AlignedFace",
    "Calibration",
    "Comparison",
    "DEFAULT_THRESHOLD",
    "DEFAULT_WORKERS",
    "FACE_POLICIES",
    "EmbedRun",
    "Face",
    "FaceDetector",
    "FaceRecognizer",
    "Gallery",
    "GalleryCheck",
    "GalleryError",
    "GalleryExistsError",
    "GalleryMismatchError",
    "GalleryNotFoundError",
    "GalleryProblem",
    "GalleryUnavailableError",
    "GalleryWriteError",
    "IdentityInfo",
    "ImageLoadError",
    "ImageTooLargeError",
    "InvalidThresholdError",
    "LoadedImage",
    "MTCNNWeightsNotFoundError",
    "MTCNN_WEIGHTS_ENV",
    "Match",
    "NoFaceError",
    "PhotoFaces",
    "ONet",
    "PNet",
    "RNet",
    "SeveralFacesError",
    "StreamReport",
    "align_folder",
    "best_accuracy_threshold",
    "calibrate_scores",
    "check_gallery",
    "check_threshold",
    "check_workers",
    "detect_faces",
    "embed_files",
    "embed_to_folder",
    "expand_inputs",
    "failure_reason",
    "faiss_available",
    "list_files",
    "load_image",
    "load_mtcnn_nets",
    "locate_mtcnn_weights",
    "open_image",
    "photo_sha256",
    "prepare_in_order",
    "read_embeddings",
    "read_pairs_list",
    "threshold_at_far",
]
