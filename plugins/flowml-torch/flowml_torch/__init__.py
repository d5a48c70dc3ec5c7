"""flowml's ``torch.model`` node: TorchScript (``.pt``) and torch.export (``.pt2``) models."""
