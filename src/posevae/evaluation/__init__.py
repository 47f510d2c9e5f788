"""Evaluation: the test split (`posevae test`, submission CSV, scores, GIFs) and motion transfer."""
