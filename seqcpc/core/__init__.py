"""The modality-agnostic core: the CPC model and its contract with the training loop, context networks and
predictors. Nothing here knows whether z came from audio, image patches or anything else."""
