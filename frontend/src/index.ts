/**
 * Entry point. TensorBoard's plugin_entry.html imports this module and calls
 * render(); the document is an iframe of its own, so the page may own <body>.
 */
import uplotCss from "uplot/dist/uPlot.min.css";
import { App } from "./app";
import css from "./style.css";

let mounted = false;

export function render(): void {
  if (mounted) return;
  mounted = true;
  // A <style> element from the bundle: the CSP forbids remote styles but
  // allows inline ones, and this way index.js is the only file to serve.
  const style = document.createElement("style");
  style.textContent = uplotCss + "\n" + css;
  document.head.appendChild(style);
  let meta = document.querySelector('meta[name="viewport"]');
  if (!meta) {
    meta = document.createElement("meta");
    meta.setAttribute("name", "viewport");
    meta.setAttribute("content", "width=device-width, initial-scale=1");
    document.head.appendChild(meta);
  }
  new App(document.body).start();
}
