"""orsanet: occlusion-robust facial expression recognition (ORSANet, ACM MM 2025) as a toolkit.

    >>> import orsanet
    >>> model = orsanet.load_model("model.safetensors")   # eval mode, knows its labels
    >>> logits, features = model(images)                  # images (B, 3, 224, 224), normalised
"""

from orsanet.checkpoint import load_model, read_metadata, save_model
from orsanet.losses import DARELoss, dare_loss
from orsanet.models import ORSANet, ORSANetConfig, ORSANetOutput

__version__ = "0.1.0"
__all__ = ["DARELoss", "ORSANet", "ORSANetConfig", "ORSANetOutput", "dare_loss", "load_model", "read_metadata",
           "save_model"]
