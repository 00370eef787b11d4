"""ORSANet and its components."""

from orsanet.models.orsanet import MCM_DEPTHS, ORSANet, ORSANetConfig, ORSANetOutput, compact_config

__all__ = ["MCM_DEPTHS", "ORSANet", "ORSANetConfig", "ORSANetOutput", "compact_config"]
