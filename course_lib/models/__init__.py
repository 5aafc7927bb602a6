"""From-scratch models, one architecture per module; parameter names follow the HF checkpoints."""
