/**
 * The run selector in the sidebar, modelled on TensorBoard's: a regex filter,
 * one row per run with a checkbox (overlay on the line charts) and a status
 * badge; clicking a row puts that run in focus.
 */
import type { RunInfo } from "./api";
import { el, replaceChildren } from "./dom";
import { compileFilter, filterRuns, sortRuns, STATUS_HELP, STATUS_LABEL } from "./runs";
import { selectPrimary, toggleCompare, type Store } from "./state";
import { runColor } from "./theme";

export class RunList {
  readonly element: HTMLElement;
  private input: HTMLInputElement;
  private filterMsg: HTMLElement;
  private list: HTMLElement;
  private count: HTMLElement;
  private runs: RunInfo[] | null = null;

  constructor(private store: Store) {
    this.input = el("input", {
      class: "sg-filter",
      attrs: { type: "search", placeholder: "Filter runs (regex)", "aria-label": "Filter runs (regular expression)", spellcheck: "false" },
    });
    this.input.value = store.get().filter;
    this.input.addEventListener("input", () => store.update((s) => ({ ...s, filter: this.input.value })));
    this.filterMsg = el("div", { class: "sg-filter-msg", attrs: { "aria-live": "polite" } });
    this.count = el("span", { class: "sg-side-count" });
    this.list = el("ul", { class: "sg-runlist", attrs: { role: "listbox", "aria-label": "Runs" } });
    this.element = el("section", { class: "sg-side-section sg-runs" }, [
      el("h2", { class: "sg-side-title" }, ["Runs ", this.count]),
      this.input,
      this.filterMsg,
      this.list,
    ]);
  }

  setRuns(runs: RunInfo[] | null): void {
    this.runs = runs ? sortRuns(runs) : null;
    this.render();
  }

  render(): void {
    const s = this.store.get();
    if (this.runs === null) {
      replaceChildren(this.list, [el("li", { class: "sg-runlist-empty", text: "Loading runs…" })]);
      return;
    }
    const f = compileFilter(s.filter);
    this.input.classList.toggle("sg-invalid", f.error !== null);
    this.input.setAttribute("aria-invalid", String(f.error !== null));
    this.filterMsg.textContent = f.error ? `Invalid regex, showing all runs: ${f.error}` : "";
    const shown = filterRuns(this.runs, f);
    this.count.textContent = f.regex ? `${shown.length} of ${this.runs.length}` : `${this.runs.length}`;
    if (this.runs.length === 0) {
      replaceChildren(this.list, [el("li", { class: "sg-runlist-empty", text: "No runs yet." })]);
      return;
    }
    if (shown.length === 0) {
      replaceChildren(this.list, [el("li", { class: "sg-runlist-empty", text: "No run matches this filter." })]);
      return;
    }
    replaceChildren(this.list, shown.map((r) => this.row(r, s.primary, s.compare)));
  }

  private row(r: RunInfo, primary: string | null, compare: readonly string[]): HTMLElement {
    const isPrimary = r.run === primary;
    const box = el("input", {
      class: "sg-run-check",
      attrs: { type: "checkbox", "aria-label": `Overlay ${r.run} on the charts` },
    });
    box.checked = isPrimary || compare.includes(r.run);
    box.disabled = isPrimary;
    box.title = isPrimary ? "This run is in focus and always drawn" : "Overlay this run's curves for comparison";
    box.addEventListener("click", (e) => e.stopPropagation());
    box.addEventListener("change", () => this.store.update((s) => toggleCompare(s, r.run)));
    const detail =
      r.status === "empty"
        ? "no epoch yet"
        : r.status === "error"
          ? `${r.epochs} epoch${r.epochs === 1 ? "" : "s"} · analysis failed`
        : `${r.epochs} epoch${r.epochs === 1 ? "" : "s"}` +
          (r.stalledEpochs > 0 ? ` · ${r.stalledEpochs} stalled` : "") +
          (r.topFinding ? ` · ${r.topFinding.replace(/_/g, " ")}` : "") +
          (r.source === "keras" ? " · Keras logs only" : r.source === "scalars" ? " · loss curve only" : "");
    const li = el(
      "li",
      {
        class: "sg-run" + (isPrimary ? " sg-selected" : ""),
        attrs: { role: "option", "aria-selected": String(isPrimary), tabindex: "0", "data-run": r.run, "data-status": r.status },
        title: r.error ? `${r.run}\n${r.error}` : r.run,
        on: {
          click: () => this.store.update((s) => selectPrimary(s, r.run)),
          keydown: (e) => {
            if (e.key === "Enter" || e.key === " ") {
              e.preventDefault();
              this.store.update((s) => selectPrimary(s, r.run));
            }
          },
        },
      },
      [
        box,
        el("span", { class: "sg-swatch sg-run-swatch", attrs: { style: `--c:${runColor(r.run)}` } }),
        el("span", { class: "sg-run-main" }, [
          el("span", { class: "sg-run-name", text: r.run }),
          el("span", { class: "sg-run-detail", text: detail }),
        ]),
        statusBadge(r.status),
      ],
    );
    return li;
  }
}

export function statusBadge(status: RunInfo["status"]): HTMLElement {
  return el("span", {
    class: `sg-badge sg-badge-${status}`,
    text: STATUS_LABEL[status] ?? status,
    title: STATUS_HELP[status] ?? "",
  });
}
