"""Training objectives: each scores a model's outputs, returns (loss, metrics) with metrics a flat dict, and
says what its loss is at chance level."""
