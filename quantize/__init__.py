"""Full-integer int8 TFLite conversion of fer-train models, verified against the float model."""
