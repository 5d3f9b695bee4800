"""Serving: one inference request from quote to receipt (InferenceService) and the usage the coordinator counts itself."""
