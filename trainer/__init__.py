"""Desktop side of fer-edge: FER-2013 data, compact CNNs, training and evaluation reports."""
