"""The pretrained weights the authors publish, as data (timm's ``default_cfgs``, open_clip's ``pretrained.py``).

Each entry names the variant it fills, where the file lives (Hugging Face repository, file, revision),
the licence its model card states, what the loader must check, and the accuracy the authors publish
for it. The accuracies are the authors' figures (FaceLiVT paper, ICIP 2025, for v1; the authors' README
for FaceLiVTv2), trained on Glint360K; this project did not measure them. A figure the authors do not
give is ``None``, never a guess.

A ``sha256`` is pinned only where the file was verified; otherwise the loader checks what the server
declares (size, and the sha256 that Git LFS uses as ETag), see :mod:`facelivt.models.hub`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from facelivt.errors import InvalidInputError

AUTHORS_REPO = "novendrastywn/FaceLiVT"
#: Reported on the authors' model card; the code of their release is BSD-3.
WEIGHTS_LICENCE = "CC-BY-SA-4.0"
#: What photo commands and ``FaceRecognizer`` use when no model or weights are given. FaceLiVTv2-S: of
#: the released models it has the best published accuracy per cost (IJB-C 95.99 at TAR@FAR=1e-4 with
#: 4.6 M parameters and 179 M MACs, above FaceLiVT-M's 95.7 at 9.7 M / 386 M; v2-M gains 0.4 point for
#: 1.5x the parameters), and it runs in about the time of EdgeFace-XS on a 2-core CPU (docs/cpu_notes.md).
DEFAULT_PRETRAINED = "facelivtv2_s"

PAPER = "FaceLiVT paper (ICIP 2025), authors' figures"
V2_README = "FaceLiVTv2 authors' README, authors' figures"
BENCHMARKS = ("lfw", "calfw", "cplfw", "cfp_fp", "agedb_30", "ijbb", "ijbc")
BENCHMARK_TITLES = {"lfw": "LFW", "calfw": "CA-LFW", "cplfw": "CP-LFW", "cfp_fp": "CFP-FP",
                    "agedb_30": "AgeDB-30", "ijbb": "IJB-B", "ijbc": "IJB-C"}


@dataclass(frozen=True)
class PublishedAccuracy:
    """Verification accuracy (%) the authors publish; IJB-B/C are TAR (%) at FAR=1e-4. ``None``: not given."""

    source: str
    lfw: float | None = None
    calfw: float | None = None
    cplfw: float | None = None
    cfp_fp: float | None = None
    agedb_30: float | None = None
    ijbb: float | None = None
    ijbc: float | None = None

    def figures(self) -> dict[str, float]:
        """The figures given, by benchmark key (``lfw``, ``cfp_fp``, ...)."""
        return {k: getattr(self, k) for k in BENCHMARKS if getattr(self, k) is not None}

    def summary(self) -> str:
        """``LFW 99.78, CFP-FP 97.47, ...`` of the figures given."""
        return ", ".join(f"{BENCHMARK_TITLES[k]} {v:g}" for k, v in self.figures().items())


@dataclass(frozen=True)
class PretrainedWeights:
    """One published checkpoint: ``name`` (as accepted by ``create_model(name, pretrained=True)``,
    ``--weights NAME`` and ``facelivt download NAME``) fills the train form of ``variant``.

    ``layout``: what the file holds and the loader checks: ``"released"`` is a plain ``state_dict`` of
    the authors' train-form module tree, read with ``torch.load(weights_only=True)`` and converted with
    a strict key and shape match to ``variant``."""

    name: str
    variant: str
    filename: str
    accuracy: PublishedAccuracy
    repo_id: str = AUTHORS_REPO
    revision: str = "main"
    sha256: str | None = None
    licence: str = WEIGHTS_LICENCE
    trained_on: str = "Glint360K"
    layout: str = "released"
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def reference(self) -> str:
        """The remote reference of the file: ``hf://owner/repo@revision/file``."""
        return f"hf://{self.repo_id}@{self.revision}/{self.filename}"

    def to_json(self) -> dict:
        out = asdict(self)
        out["reference"] = self.reference
        return out


def _entry(variant: str, filename: str, accuracy: PublishedAccuracy, **kw) -> PretrainedWeights:
    return PretrainedWeights(name=variant, variant=variant, filename=filename, accuracy=accuracy, **kw)


PRETRAINED: dict[str, PretrainedWeights] = {
    e.name: e
    for e in (
        _entry("facelivt_s", "facelivt-s.pt", PublishedAccuracy(PAPER, lfw=99.6, cfp_fp=94.6, agedb_30=95.6)),
        _entry("facelivt_m", "facelivt-m.pt",
               PublishedAccuracy(PAPER, lfw=99.7, cfp_fp=97.2, agedb_30=97.6, ijbb=93.7, ijbc=95.7)),
        _entry("facelivtv2_xs", "facelivtv2-xs.pt",
               PublishedAccuracy(V2_README, lfw=99.63, cfp_fp=95.23, agedb_30=96.68, ijbb=90.67, ijbc=91.25)),
        _entry("facelivtv2_s", "facelivtv2-s.pt",
               PublishedAccuracy(V2_README, lfw=99.78, cfp_fp=97.47, agedb_30=97.82, ijbb=94.51, ijbc=95.99)),
        _entry("facelivtv2_m", "facelivtv2-m.pt",
               PublishedAccuracy(V2_README, lfw=99.78, cfp_fp=97.93, agedb_30=98.10, ijbb=95.02, ijbc=96.42)),
        _entry("facelivtv2_l", "facelivtv2-l.pt",
               PublishedAccuracy(V2_README, lfw=99.80, cfp_fp=98.26, agedb_30=98.02, ijbb=95.18, ijbc=96.59)),
    )
}


def list_pretrained() -> list[str]:
    """Names with published pretrained weights."""
    return sorted(PRETRAINED)


def pretrained_weights(name: str) -> PretrainedWeights:
    """The table entry of ``name``; :class:`InvalidInputError` lists the names that have one."""
    try:
        return PRETRAINED[name]
    except KeyError:
        raise InvalidInputError(
            f"no pretrained weights named {name!r}; pretrained models: {', '.join(list_pretrained())}"
        ) from None
