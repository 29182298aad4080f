// The search page: free text and patient name, facets to narrow, a page of series, and
// workflows on the selected ones. The state lives in the URL, so a search can be shared.
import { clear, el, getJSON, isoDate, personName, studyUrl, thumbnail, viewerUrl } from "./api.js";
import { workflowRunner } from "./runs.js";

const PAGE = 25;
const FACET_TITLES = {
  Modality: "Modality",
  BodyPartExamined: "Body part",
  StudyDate: "Study year",
  Project: "Project",
  AnnotationLabels: "Annotation labels",
  SourceAE: "Source AE",
};
const CONTROLS = new Set(["q", "PatientName", "sort", "offset"]);

const form = document.getElementById("search-form");
const facetPanel = document.getElementById("facets");
const filterChips = document.getElementById("filters");
const results = document.getElementById("results");
const summary = document.getElementById("summary");
const pager = document.getElementById("pager");

function state() {
  return new URLSearchParams(window.location.search);
}

function go(params) {
  history.pushState(null, "", `${window.location.pathname}?${params}`);
  run();
}

// Facet buckets as filters: a study year is a date range, anything else the value itself.
function facetFilter(field, key) {
  if (field === "StudyDate") {
    const year = key.slice(0, 4);
    return `${year}0101-${year}1231`;
  }
  return key;
}

function filterLabel(field, value) {
  const title = FACET_TITLES[field] || field;
  const range = /^(\d{4})0101-\1?(\d{4})1231$/.exec(value);
  return `${title}: ${range ? value.slice(0, 4) : value}`;
}

function apiParameters(params) {
  const api = new URLSearchParams();
  for (const [name, value] of params) {
    if (name === "PatientName") {
      if (value.trim()) api.append(name, /[*?]/.test(value) ? value : `${value.trim()}*`);
    } else if (value.trim() || name === "offset") {
      api.append(name, value);
    }
  }
  if (!api.has("sort")) api.set("sort", "-ArrivedAt");
  api.set("limit", String(PAGE));
  return api;
}

async function run() {
  const params = state();
  form.q.value = params.get("q") || "";
  form.PatientName.value = params.get("PatientName") || "";
  form.sort.value = params.get("sort") || "-ArrivedAt";
  summary.textContent = "Searching…";
  let found;
  try {
    found = await getJSON(`/api/v1/search?${apiParameters(params)}`);
  } catch (error) {
    summary.textContent = error.message;
    clear(results);
    return;
  }
  renderFilters(params);
  renderFacets(params, found.facets);
  renderHits(found.hits);
  renderPager(params, found.total);
}

function renderFilters(params) {
  const chips = [];
  for (const [name, value] of params) {
    if (CONTROLS.has(name)) continue;
    const without = new URLSearchParams(params);
    without.delete(name, value);
    without.delete("offset");
    chips.push(
      el("button", { type: "button", class: "btn btn-default btn-xs pf-chip", title: "Remove this filter", onclick: () => go(without) },
        filterLabel(name, value), " ×"));
  }
  clear(filterChips, chips);
}

function renderFacets(params, facets) {
  const panels = [];
  for (const [field, buckets] of Object.entries(facets)) {
    if (!buckets.length) continue;
    const items = buckets.map((bucket) => {
      const value = facetFilter(field, bucket.key);
      const active = params.getAll(field).includes(value);
      const next = new URLSearchParams(params);
      next.delete("offset");
      if (active) next.delete(field, value);
      else next.append(field, value);
      const label = field === "StudyDate" ? bucket.key.slice(0, 4) : bucket.key;
      return el("li", {},
        el("a", { href: `?${next}`, class: active ? "pf-facet-active" : null, "data-facet": field, "data-key": bucket.key,
          onclick: (event) => { event.preventDefault(); go(next); } },
          el("span", { class: "pf-facet-key" }, label), " ", el("span", { class: "badge" }, bucket.count)));
    });
    panels.push(el("div", { class: "pf-facet" }, el("h5", {}, FACET_TITLES[field] || field), el("ul", { class: "list-unstyled" }, items)));
  }
  clear(facetPanel, panels.length ? panels : el("p", { class: "text-muted" }, "No facets."));
}

function renderHits(hits) {
  const rows = hits.map((hit) => {
    const study = hit.StudyInstanceUID;
    const series = hit.SeriesInstanceUID;
    const name = hit.PatientName?.Alphabetic ?? "";
    const seriesLabel = [hit.Modality, hit.SeriesNumber != null ? `#${hit.SeriesNumber}` : "", hit.SeriesDescription || ""].filter(Boolean).join(" ");
    return el("tr", { "data-series": series },
      el("td", {}, el("input", { type: "checkbox", class: "pf-select", value: series, "aria-label": "Select series" })),
      el("td", {}, thumbnail(study, series)),
      el("td", { class: "pf-patient" }, el("a", { href: studyUrl(study) }, personName(name) || "(no name)"), el("div", { class: "text-muted small" }, hit.PatientID || "")),
      el("td", {}, isoDate(hit.StudyDate)),
      el("td", {}, hit.StudyDescription || ""),
      el("td", {}, (hit.ModalitiesInStudy || [hit.Modality]).join(", ")),
      el("td", {}, seriesLabel),
      el("td", { class: "text-right" }, hit.NumberOfInstances ?? ""),
      el("td", {}, el("a", { href: viewerUrl(study), class: "btn btn-default btn-xs", title: "Open the study in the viewer" }, "View")));
  });
  clear(results, rows.length ? rows : el("tr", {}, el("td", { colspan: 9, class: "text-muted" }, "Nothing found.")));
}

function renderPager(params, total) {
  const offset = Number(params.get("offset") || 0);
  const last = Math.min(offset + PAGE, total);
  summary.textContent = total ? `${offset + 1}–${last} of ${total} series` : "0 series";
  const page = (to) => {
    const next = new URLSearchParams(params);
    next.set("offset", String(to));
    return () => go(next);
  };
  clear(pager,
    el("button", { type: "button", class: "btn btn-default btn-sm", disabled: offset === 0, onclick: page(Math.max(0, offset - PAGE)) }, "‹ Previous"),
    " ",
    el("button", { type: "button", class: "btn btn-default btn-sm", disabled: last >= total, onclick: page(offset + PAGE) }, "Next ›"));
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const params = state();
  for (const name of ["q", "PatientName", "sort", "offset"]) params.delete(name);
  if (form.q.value.trim()) params.set("q", form.q.value.trim());
  if (form.PatientName.value.trim()) params.set("PatientName", form.PatientName.value.trim());
  params.set("sort", form.sort.value);
  go(params);
});
form.sort.addEventListener("change", () => form.requestSubmit());
window.addEventListener("popstate", run);

const selected = () => [...results.querySelectorAll("input.pf-select:checked")].map((box) => box.value);
workflowRunner(document.getElementById("runner"), selected);
run();
