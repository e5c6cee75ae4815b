"""Face data: RecordIO (insightface layout), image folders, synthetic identities,
samplers and the pixel conventions (112x112 RGB, ``(pixel / 255 - 0.5) / 0.5``)."""
from .folder import ImageFolderDataset, scan_image_folder
from .loader import build_dataset, build_loader, split_identities
from .recordio import (
    RecordIODataset,
    RecordIOError,
    RecordIOReader,
    RecordIOWriter,
    pack_header,
    pack_image_folder,
    unpack_payload,
)
from .memory import FaceArray
from .sampler import DistributedResumableSampler, ResumableSampler
from .synthetic import SyntheticIdentities
from .transforms import hflip, to_tensor, to_tensor_batch, to_uint8

__all__ = [
    "DistributedResumableSampler",
    "FaceArray",
    "ImageFolderDataset",
    "RecordIODataset",
    "RecordIOError",
    "RecordIOReader",
    "RecordIOWriter",
    "ResumableSampler",
    "SyntheticIdentities",
    "build_dataset",
    "build_loader",
    "hflip",
    "pack_header",
    "pack_image_folder",
    "scan_image_folder",
    "split_identities",
    "to_tensor",
    "to_tensor_batch",
    "to_uint8",
    "unpack_payload",
]
