/** The sidebar's settings: TensorBoard-style smoothing, off by default. */
import { el } from "./dom";
import type { Store } from "./state";

export function renderSettings(store: Store): HTMLElement {
  const value = el("span", { class: "sg-smoothing-value" });
  const slider = el("input", {
    class: "sg-slider",
    attrs: { type: "range", min: "0", max: "0.99", step: "0.01", "aria-label": "Smoothing" },
  });
  const show = (w: number) => {
    slider.value = String(w);
    value.textContent = w === 0 ? "0 (off)" : w.toFixed(2);
  };
  show(store.get().smoothing);
  // "input" for live feedback on the number, the charts redraw on "change"
  // so dragging does not rebuild a dozen charts per pixel.
  slider.addEventListener("input", () => show(Number(slider.value)));
  slider.addEventListener("change", () => store.update((s) => ({ ...s, smoothing: Number(slider.value) })));
  return el("section", { class: "sg-side-section" }, [
    el("h2", { class: "sg-side-title", text: "Settings" }),
    el("label", { class: "sg-setting" }, [el("span", { text: "Smoothing" }), value]),
    slider,
    el("p", {
      class: "sg-hint",
      text: "Exponential moving average, as in the Scalars tab. Default 0: every chart shows the raw per-epoch values; the faint line is the raw curve when smoothing is on.",
    }),
  ]);
}
