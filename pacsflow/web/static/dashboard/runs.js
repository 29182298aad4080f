// Start user-runnable workflows on selected series and follow their runs.
import { ApiError, clear, el, getJSON, localTime, postJSON } from "./api.js";

const FINISHED = new Set(["success", "failed"]);
const POLL_MS = 3000;

export function stateBadge(state) {
  return el("span", { class: `pf-state pf-state-${state || "none"}` }, state || "unknown");
}

// A form: workflow choice, Run button, and a live table of the runs it started.
// selected() gives the SeriesInstanceUIDs to run on; onFinished() is called when all are done.
export async function workflowRunner(container, selected, onFinished = () => {}) {
  const choice = el("select", { class: "form-control input-sm", "aria-label": "Workflow" });
  const button = el("button", { type: "button", class: "btn btn-primary btn-sm" }, "Run on selected series");
  const message = el("span", { class: "pf-message" });
  const runs = el("tbody");
  clear(
    container,
    el("div", { class: "form-inline pf-runner" }, choice, " ", button, " ", message),
    el("table", { class: "table table-condensed pf-runs" },
      el("thead", {}, el("tr", {}, el("th", {}, "Workflow"), el("th", {}, "Series"), el("th", {}, "Run"), el("th", {}, "State"))),
      runs),
  );
  try {
    const { workflows } = await getJSON("/api/v1/workflows");
    clear(choice, workflows.map((w) => el("option", { value: w.dag_id, title: w.description || "" }, w.dag_id)));
    if (!workflows.length) button.disabled = true;
  } catch (error) {
    message.textContent = `Workflows are unavailable: ${error.message}`;
    button.disabled = true;
    return;
  }
  button.addEventListener("click", async () => {
    const series = selected();
    if (!series.length) {
      message.textContent = "Select one or more series first.";
      return;
    }
    button.disabled = true;
    message.textContent = "Starting…";
    try {
      const started = await postJSON(`/api/v1/workflows/${encodeURIComponent(choice.value)}/runs`, { series });
      message.textContent = `Started ${started.runs.length} run(s).`;
      await Promise.all(started.runs.map((run) => follow(run, runs)));
      onFinished();
    } catch (error) {
      message.textContent = error instanceof ApiError ? error.message : String(error);
    } finally {
      button.disabled = false;
    }
  });
}

async function follow(run, tbody) {
  const state = el("td", {}, stateBadge("queued"));
  tbody.prepend(el("tr", { "data-run-id": run.run_id }, el("td", {}, run.dag_id), el("td", { class: "pf-uid" }, run.series_instance_uid), el("td", { class: "pf-uid" }, run.run_id), state));
  for (;;) {
    let current;
    try {
      current = await getJSON(`/api/v1/workflows/${encodeURIComponent(run.dag_id)}/runs/${encodeURIComponent(run.run_id)}`);
    } catch (error) {
      clear(state, stateBadge("unknown"), " ", error.message);
      return;
    }
    clear(state, stateBadge(current.state));
    if (FINISHED.has(current.state)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

// The runs that touched a study, as a table body; returns whether any is still going.
export function runRows(runs) {
  return runs.map((run) =>
    el("tr", {},
      el("td", {}, run.dag_id),
      el("td", { class: "pf-uid" }, run.series_instance_uid || ""),
      el("td", { class: "pf-uid" }, run.dag_run_id),
      el("td", {}, stateBadge(run.state)),
      el("td", {}, localTime(run.start_date)),
      el("td", {}, localTime(run.end_date))));
}

export const isRunning = (runs) => runs.some((run) => !FINISHED.has(run.state));
