"""Few-shot learning: episodes, meta-learners trained by the same loop as pretraining, episodic evaluation."""
