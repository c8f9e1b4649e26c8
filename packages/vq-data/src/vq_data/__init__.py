"""vq-data: image sources -> webdataset shards with manifests, transforms, and resumable loaders."""

from vq_core.lazy import lazy_exports
from vq_data.version import __version__

__all__ = lazy_exports(
    __name__,
    {
        "vq_data.shards": [
            "SampleError", "ShardError", "ShardSetWriter", "check_key", "iter_samples", "iter_shard", "key_output_path",
            "open_manifest", "shard_path", "verify_shards",
        ],
        "vq_data.imageio": ["DEFAULT_MAX_PIXELS", "ImageDecodeError", "decode_image", "encode_image", "open_image"],
        "vq_data.loading": [
            "ImageDecoder", "ShardDataset", "ShardLoader", "TokenDecoder", "image_loader", "resolve_rank",
            "sample_generator", "token_loader",
        ],
        "vq_data.pack": ["SKIPPED_NAME", "pack", "read_skipped"],
        "vq_data.sources": [
            "BUNDLED_CLASSES", "DIGIT_CLASSES", "SOURCE_KINDS", "BundledSource", "DigitsSource", "FolderSource",
            "ImageNetSource", "ImageRecord", "ImageSource", "ListSource", "SourceError", "available_photos",
            "digits_split", "make_source",
        ],
        "vq_data.transforms": [
            "EvalTransform", "TenCropTransform", "TrainTransform", "resize_center_crop", "ten_crop", "to_pil",
            "to_tensor", "to_uint8",
        ],
    },
)
__all__.append("__version__")
