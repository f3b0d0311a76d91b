/**
 * Empty states that teach the next step instead of showing a blank page.
 * Code snippets go through textContent like everything else.
 */
import { el } from "./dom";

const IMPORT_LINE = "from tb_stagnation import StagnationCallback";
const FIT_LINE = 'model.fit(..., callbacks=[StagnationCallback(log_dir="logs/run1")])';

function codeBlock(lines: string[]): HTMLElement {
  return el("pre", { class: "sg-codeblock" }, [el("code", { text: lines.join("\n") })]);
}

export function noRuns(): HTMLElement {
  return el("section", { class: "sg-card sg-empty", attrs: { "data-empty": "no-runs" } }, [
    el("h2", { class: "sg-empty-title", text: "No runs yet" }),
    el("p", {
      text: "This tab explains why a Keras model's loss and accuracy stay the same every epoch. Add two lines to your training script:",
    }),
    codeBlock([IMPORT_LINE, FIT_LINE]),
    el("p", { text: "Then start TensorBoard on the parent folder:" }),
    codeBlock(["tensorboard --logdir logs"]),
    el("p", {
      class: "sg-hint",
      text: "Runs logged only by keras.callbacks.TensorBoard also appear here, with the checks their scalars allow. This page looks for new runs every 20 seconds.",
    }),
  ]);
}

/** A run logged by keras.callbacks.TensorBoard alone: say what is missing and how to get it. */
export function kerasOnly(run: string): HTMLElement {
  return el("section", { class: "sg-card sg-note-card", attrs: { "data-empty": "keras-only" } }, [
    el("h3", { class: "sg-card-title", text: "Logged by keras.callbacks.TensorBoard only" }),
    el("p", { text: `Run “${run}” has loss and metrics per epoch, so the loss checks below work. Missing:` }),
    el("ul", {}, [
      el("li", { text: "per-layer gradient norms and update ratios (vanishing / exploding gradients, frozen layers, learning rate too small)" }),
      el("li", { text: "predictions (collapse to one class, predictions that stop changing)" }),
      el("li", { text: "dead and saturated units, input scale, repeated batches" }),
    ]),
    el("p", { text: "Add the callback with the same log_dir you give keras.callbacks.TensorBoard:" }),
    codeBlock([IMPORT_LINE, FIT_LINE]),
  ]);
}

/** A run of another tool's scalars: only its loss curve (and accuracy) speak. */
export function otherTool(run: string): HTMLElement {
  return el("section", { class: "sg-card sg-note-card", attrs: { "data-empty": "other-tool" } }, [
    el("h3", { class: "sg-card-title", text: "Scalars of another tool" }),
    el("p", {
      text: `Run “${run}” was not written by Keras's callbacks: its loss curve was found by the tag's name, so stalls are flagged from the curve alone and no cause can be measured. The notes under Findings say which tags were read.`,
    }),
    el("p", { text: "For a Keras model, add the callback to fit():" }),
    codeBlock([IMPORT_LINE, FIT_LINE]),
  ]);
}

export function emptyRun(): HTMLElement {
  return el("section", { class: "sg-card sg-empty", attrs: { "data-empty": "no-epochs" } }, [
    el("h3", { class: "sg-card-title", text: "No epoch logged yet" }),
    el("p", { text: "The callback writes at the end of every epoch. This page checks for new data every 20 seconds." }),
  ]);
}

export function noSelection(): HTMLElement {
  return el("section", { class: "sg-card sg-empty" }, [
    el("p", { text: "Select a run on the left." }),
  ]);
}

export function loading(run: string): HTMLElement {
  return el("section", { class: "sg-card sg-empty sg-loading" }, [el("p", { text: `Loading ${run}…` })]);
}

export function errorCard(message: string, title = "Could not load data"): HTMLElement {
  return el("section", { class: "sg-card sg-error", attrs: { role: "alert" } }, [
    el("h3", { class: "sg-card-title", text: title }),
    el("p", { text: message }),
  ]);
}
