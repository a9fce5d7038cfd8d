"""LVDM video diffusion (VideoCrafter1/2, DynamiCrafter, Make-Your-Video): one 3-D UNet codebase.

config      UNetConfig, the published Variants, detect_variant (from key names and shapes)
unet        UNetModel: the official openaimodel3d UNet with ComfyUI-style `operations`, SDPA attention
attention   spatial / temporal transformers, image cross-attention, relative position, causal window
resampler   Resampler: DynamiCrafter's image_proj_model (CLIP image tokens -> 16 tokens per frame)
schedule    training schedules (linear, zero terminal SNR, scale_arr) and DDIM timestep schedules
ddim        the official DDIM sampler (uniform / uniform_trailing, rescale, multi-condition CFG)
checkpoint  safe loading (safetensors, weights_only pickles, wrappers, mmap) and component split
clip_context  DynamiCrafter's CLIP preprocessing (official and core), grey unconditional frame, start-frame fitting
makeyourvideo  Make-Your-Video's depth condition (get_batch_depth), frame selection, long-video window plan
comfy_model the one ComfyUI adapter: per-variant BASE configs, LVDMModel (frames in batch), load_lvdm_checkpoint
"""
