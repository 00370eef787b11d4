"""orsanet."""
