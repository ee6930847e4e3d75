"""The networks: VGG layer names, weights (the restricted reader), the feature extractor, devices and precision."""
