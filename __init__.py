"""VideoPriors: text-to-video diffusion priors as ComfyUI nodes (V3 schema).

ComfyUI imports this folder as a module named after its full path, so every import
inside the pack is relative. The nodes (and with them ComfyUI's own modules) are
imported when ComfyUI calls the entrypoint, so the pack's folder stays importable
without ComfyUI (pytest imports it as the package around tests/).
"""

WEB_DIRECTORY = "./nodes/web"  # frontend extension: the SVG upload button


async def comfy_entrypoint():
    from .nodes import comfy_entrypoint as entrypoint

    return await entrypoint()
