/**
 * The diagnosis at the top of a run: what is wrong, how sure we are, the
 * numbers behind it and what to change. Clicking a finding highlights its
 * epochs on every chart and its layers in the heatmaps.
 */
import type { Finding, Report } from "./api";
import { el } from "./dom";
import { describeSpans, toSpans } from "./ranges";
import { findingKeys } from "./state";

export interface FindingsOptions {
  selectedKey: string | null;
  onToggle: (key: string) => void;
}

export function renderFindings(report: Report, opts: FindingsOptions): HTMLElement {
  // Shown in the backend's order: the analysis ranks findings by importance,
  // and /runs' top_finding is the first error among them.
  const stalled = toSpans(report.stalledEpochs);
  const summary = report.findings.length === 0
    ? report.epochs === 0
      ? "No epoch logged yet."
      : "No stagnation found: nothing in the logged statistics looks stuck."
    : `${report.findings.length} finding${report.findings.length === 1 ? "" : "s"}` +
      (stalled.length > 0
        ? `; ${report.stalledEpochs.length} of ${report.epochs} epochs stalled (${describeSpans(stalled)})`
        : "; no epoch is flagged as stalled") +
      ". Click a finding to highlight its epochs and layers.";
  // The ranking's heart: a symptom names the finding that likely causes it.
  const titles = new Map(report.findings.map((f) => [f.code, f.title]));
  const keys = findingKeys(report.run, report.findings);
  const windows = report.stallWindows.map((w) =>
    el("span", {
      class: `sg-chip sg-chip-${w.kind}`,
      text: `${w.kind} ${w.start}–${w.end}`,
      title: w.confidence !== null ? `${w.kind} from epoch ${w.start} to ${w.end}, confidence ${Math.round(w.confidence * 100)}%` : undefined,
    }),
  );
  return el("section", { class: "sg-card sg-findings", attrs: { "aria-label": "Findings" } }, [
    el("header", { class: "sg-card-head" }, [
      el("h3", { class: "sg-card-title", text: "Diagnosis" }),
      el("span", { class: "sg-findings-windows" }, windows),
    ]),
    el("p", { class: "sg-findings-summary", text: summary }),
    report.error ? el("p", { class: "sg-findings-error", text: `The run could not be read: ${report.error}` }) : null,
    report.findings.length > 0
      ? el(
          "ol",
          { class: "sg-finding-list" },
          report.findings.map((f, index) => findingItem(f, keys[index] as string, opts, titles)),
        )
      : null,
    report.notes.length > 0
      ? el("ul", { class: "sg-notes" }, report.notes.map((n) => el("li", { text: n })))
      : null,
  ]);
}

function findingItem(f: Finding, key: string, opts: FindingsOptions, titles: Map<string, string>): HTMLElement {
  const selected = opts.selectedKey === key;
  const spans = toSpans(f.epochs);
  const meta: (HTMLElement | null)[] = [
    el("span", { class: `sg-sev sg-sev-${f.severity === "error" ? "error" : "warning"}`, text: f.severity }),
    f.confidence !== null
      ? el("span", { class: "sg-meta", text: `confidence ${Math.round(f.confidence * 100)}%` })
      : null,
    el("span", { class: "sg-meta", text: spans.length > 0 ? `epochs ${describeSpans(spans)}` : "whole run" }),
    el("code", { class: "sg-code", text: f.code }),
  ];
  const item = el(
    "li",
    {
      class: "sg-finding" + (selected ? " sg-selected" : ""),
      attrs: {
        tabindex: "0",
        role: "button",
        "aria-pressed": String(selected),
        "data-code": f.code,
        "data-key": key,
      },
      title: selected ? "Click to clear the highlight" : "Click to highlight this finding's epochs and layers",
      on: {
        click: () => opts.onToggle(key),
        keydown: (e) => {
          if (e.key === "Enter" || e.key === " ") {
            e.preventDefault();
            opts.onToggle(key);
          }
        },
      },
    },
    [
      el("div", { class: "sg-finding-head" }, [el("h4", { class: "sg-finding-title", text: f.title }), ...meta]),
      f.explainedBy
        ? el("p", { class: "sg-consequence", attrs: { "data-explained-by": f.explainedBy } }, [
            el("span", { class: "sg-label", text: "Likely a consequence of: " }),
            titles.get(f.explainedBy) ?? f.explainedBy.replace(/_/g, " "),
          ])
        : null,
      f.layers.length > 0
        ? el("div", { class: "sg-finding-layers" }, [
            el("span", { class: "sg-label", text: "Layers: " }),
            ...f.layers.map((l) => el("span", { class: "sg-chip sg-chip-layer", text: l })),
          ])
        : null,
      f.evidence ? el("p", { class: "sg-evidence" }, [el("span", { class: "sg-label", text: "Evidence: " }), f.evidence]) : null,
      f.fix ? el("p", { class: "sg-fix" }, [el("span", { class: "sg-label", text: "Fix: " }), f.fix]) : null,
    ],
  );
  return item;
}
