"""orsanet: occlusion-robust facial expression recognition (ORSANet, ACM MM 2025) as a toolkit.

    >>> import orsanet
    >>> recognizer = orsanet.Recognizer()                        # the packaged default model
    >>> for face in recognizer.predict("photo.jpg"):             # a path, a PIL image or an RGB array
    ...     print(face.box, face.expression, face.confidence)

    >>> model = orsanet.load_model("model.safetensors")          # eval mode, knows its labels and contract
    >>> face_model = orsanet.FaceModel(model)                    # priors, then model
    >>> logits = face_model.logits(pixels)                       # pixels (B, 3, S, S) in [0, 1]
"""

from orsanet.api import Recognizer
from orsanet.checkpoint import load_model, read_metadata, save_model
from orsanet.contract import InputContract
from orsanet.face_model import FaceModel
from orsanet.inference.results import Face, ImageResult
from orsanet.losses import DARELoss, dare_loss
from orsanet.models import ORSANet, ORSANetConfig, ORSANetOutput

__version__ = "0.1.0"
__all__ = ["DARELoss", "Face", "FaceModel", "ImageResult", "InputContract", "ORSANet", "ORSANetConfig",
           "ORSANetOutput", "Recognizer", "dare_loss", "load_model", "read_metadata", "save_model"]
