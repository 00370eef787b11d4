"""Recognition of faces in pictures, one file per step of the road:

- ``inputs``: image files, folders, videos, PIL images and arrays -> upright RGB pictures;
- ``framing``: faces found (detector + tiles) and framed as the model's training faces were;
- ``pipeline``: detect, frame, priors, classify, for a batch of pictures;
- ``explain``: Grad-CAM, only when a picture or an explanation is asked for;
- ``results``: the typed results (``Face``, ``ImageResult``) and their rows;
- ``writers``: JSON / CSV rows streamed to disk as they come;
- ``pictures``: annotated pictures.

``orsanet.Recognizer`` (``orsanet.api``) is the entry point.
"""

from orsanet.inference.results import Face, ImageResult

__all__ = ["Face", "ImageResult"]
