// VideoPriors: an "upload SVG" button on VP_LoadSVGSketch.
// The core image-upload widget only accepts raster images, so SVG files get their own button:
// it posts the file to ComfyUI's /upload/image (into the input folder) and selects it.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

async function uploadSvg(file) {
  const body = new FormData();
  body.append("image", file);
  body.append("type", "input");
  const resp = await api.fetchApi("/upload/image", { method: "POST", body });
  if (resp.status !== 200) {
    throw new Error(`upload failed: ${resp.status} ${resp.statusText}`);
  }
  const data = await resp.json();
  return data.subfolder ? `${data.subfolder}/${data.name}` : data.name;
}

app.registerExtension({
  name: "VideoPriors.SVGUpload",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== "VP_LoadSVGSketch") return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = onNodeCreated?.apply(this, arguments);
      const combo = this.widgets?.find((w) => w.name === "svg");
      const input = document.createElement("input");
      input.type = "file";
      input.accept = ".svg,image/svg+xml";
      input.style.display = "none";
      input.onchange = async () => {
        if (!input.files?.length) return;
        try {
          const name = await uploadSvg(input.files[0]);
          if (combo) {
            if (!combo.options.values.includes(name)) combo.options.values.push(name);
            combo.value = name;
            combo.callback?.(name);
          }
        } catch (err) {
          console.warn("[VideoPriors]", err);
          app.extensionManager?.toast?.add({ severity: "error", summary: "SVG upload", detail: String(err), life: 5000 });
        } finally {
          input.value = "";
        }
      };
      document.body.append(input);
      const button = this.addWidget("button", "upload SVG", null, () => input.click());
      button.serialize = false; // not part of widgets_values: workflows keep one value per input
      const onRemoved = this.onRemoved;
      this.onRemoved = function () {
        input.remove();
        return onRemoved?.apply(this, arguments);
      };
      return r;
    };
  },
});
