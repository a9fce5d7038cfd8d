"""VideoPriors pipelines: pure PyTorch, importable without ComfyUI."""
