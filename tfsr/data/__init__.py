"""Image I/O, MATLAB-compatible resizing, colour conversion and training pipelines."""
