"""`edgeresnet report`: several runs, and the devices they were benchmarked on, side by side."""
